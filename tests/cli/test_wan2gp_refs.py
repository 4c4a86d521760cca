"""Job references and download=False on WanGP's Gradio face (against the mock)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vidbridge import Client, NotAttachableError, Phase

pytestmark = pytest.mark.integration


def test_gradio_face_refs_outputs_and_attach(mock: Any, tmp_path: Path) -> None:
    with Client(cache_dir=tmp_path / "cache") as client:
        session = client.connect(mock.url)
        job = session.submit(prompt="kept on the server", frames=5, steps=1, output_dir=tmp_path / "unused",
                             download=False)
        assert job.wait(timeout=120).phase is Phase.COMPLETED, job.error
        ref = job.ref
        assert ref.backend == "wan2gp" and ref.data["face"] == "gradio" and ref.data["outputs"]
        (output,) = job.outputs()
        assert output.name.endswith(".mp4") and output.url.startswith(mock.url.rstrip("/"))
        (artifact,) = job.fetch(tmp_path / "later")
        assert artifact.path.parent == tmp_path / "later" and artifact.size > 0
        assert not (tmp_path / "unused").exists()
        with Client(cache_dir=tmp_path / "cache2") as other:
            # A finished job's reference names its outputs, which any gradio session can download.
            again = other.attach(ref.to_json(), download=False)
            assert again.wait(timeout=60).phase is Phase.COMPLETED and again.id == job.id
            (copy,) = again.fetch(tmp_path / "again")
            assert copy.sha256 == artifact.sha256
            # A reference without outputs (taken before the job finished) cannot be followed elsewhere.
            early = ref.model_copy(update={"data": {**ref.data, "outputs": []}})
            with pytest.raises(NotAttachableError) as caught:
                other.attach(early)
            assert caught.value.reason == "session_bound" and "gradio session" in str(caught.value)
            # Outputs the server no longer serves: said so, naming the file.
            gone = ref.model_copy(update={"data": {**ref.data, "outputs": [{"path": "/nowhere/gone.mp4",
                                                                            "name": "gone.mp4"}]}})
            with pytest.raises(NotAttachableError) as caught:
                other.attach(gone)
            assert caught.value.reason == "unknown" and "gone.mp4" in str(caught.value)
