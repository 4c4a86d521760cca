"""What a mock server keeps across its restart (the counter, like WanGP's outputs folder), WanGP's
output naming from the ``output_filename`` template, and the ``exit:at=output`` fault."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from vidbridge.plugins.mock_backend import faults, generation
from vidbridge.plugins.mock_backend.ledger import Ledger


def test_counter_survives_a_new_process_and_reset_empties_the_file(tmp_path: Path) -> None:
    path = tmp_path / "generations.jsonl"
    first = Ledger()
    first.persist_to(path)
    done = first.start(prompt="a", seed=1, client_id="c", model_type="t2v", session="s")
    first.finish(done, "completed", "/o/a.mp4")
    first.start(prompt="b", seed=2, client_id="c", model_type="t2v", session="s")  # dies running
    first.event("interrupt")
    first.call("s", "process_tasks")
    with path.open("a") as cut:
        cut.write('{"op": "start", "ru')  # a line cut by a kill
    first.close()
    first.close()
    second = Ledger()
    second.persist_to(path)
    snap = second.snapshot()
    assert (snap["total"], snap["completed"], snap["interrupted"]) == (2, 1, 1)
    assert snap["events"] == {"interrupt": 1} and snap["calls"] == {}
    assert snap["runs"][0]["file"] == "/o/a.mp4"
    second.reset()
    second.close()
    third = Ledger()
    third.persist_to(path)
    assert third.snapshot()["total"] == 0
    third.close()


NOW = dt.datetime(2026, 12, 2, 21, 5, 9)


@pytest.mark.parametrize(("template", "expected"), [
    ("fox_seed7_vb-ab12", "fox_seed7_vb-ab12.mp4"),
    ("{date}-{prompt(9)}-{seed}", "2026-12-02-21h05m09s-a_red_fox-7.mp4"),
    ("{steps}steps_{frames}f_{cfg}_{resolution}_{flow_shift}", "4steps_17f_5_832x480.mp4"),
    ("a  b//c?.mp4", "a_b_c_.mp4"),  # as WanGP: the "?" becomes "_", the extension goes
    ("???", "2026-12-02-21h05m09s.mp4"),
])
def test_output_names_follow_wangps_template(template: str, expected: str) -> None:
    params = {"output_filename": template, "prompt": "a red fox in snow", "seed": 7, "num_inference_steps": 4,
              "video_length": 17, "guidance_scale": 5, "resolution": "832x480"}
    assert generation.output_name(params, NOW, "mp4") == expected


def test_unknown_placeholder_fails_and_automatic_names_stay() -> None:
    with pytest.raises(ValueError, match="Unknown placeholder"):
        generation.output_name({"output_filename": "{model}", "prompt": "p", "seed": 1}, NOW, "mp4")
    assert generation.output_name({"prompt": "fox", "seed": 3}, NOW, "mp4") == "2026-12-02-21h05m09s_seed3_fox.mp4"


def test_existing_names_get_wangps_counter(tmp_path: Path) -> None:
    (tmp_path / "x.mp4").write_bytes(b"")
    (tmp_path / "x(2).mp4").write_bytes(b"")
    assert generation.unique_path(tmp_path, "x.mp4").name == "x(3).mp4"


def test_exit_at_output_fires_only_after_the_output() -> None:
    fault = faults.parse_fault("exit:at=output,code=4")
    codes: list[int] = []
    faults.fire_generation_faults([fault], 1, 1, exit_process=codes.append)
    assert codes == []  # not during the steps
    faults.fire_output_faults([fault, faults.parse_fault("exit:after_step=1")], exit_process=codes.append)
    assert codes == [4]
    with pytest.raises(RuntimeError, match="may not end its process"):
        faults.fire_output_faults([fault])
