"""The mock as a child process: the URL line, dying mid-generation, restarting on the same port."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mock_helpers import open_client, queue_task, save_form

from vidbridge.plugins.mock_backend import faults

pytestmark = pytest.mark.integration


def test_cli_help_lists_the_shared_options() -> None:
    out = subprocess.run([sys.executable, "-m", "vidbridge.plugins.mock_backend", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for option in ("--host", "--port", "--step-delay", "--auth", "--fault", "--full-surface",
                   "--output-dir"):
        assert option in out


def test_exit_mid_generation_then_restart_on_the_same_port(vidbridge_mock_subprocess) -> None:
    server = vidbridge_mock_subprocess
    url, port = server.url, server.port
    with open_client(url) as client:
        # Remembered across restarts, like WanGP's last used model.
        client.predict("t2v_fusionix", api_name="/change_model_from_target")
        save_form(client, prompt="dies at step 2", num_inference_steps=5, video_length=5)
        queue_task(client, "t2v_fusionix")
        faults.add_faults(url, "exit:after_step=2,code=3")
        with pytest.raises(BaseException):  # CancelledError/ConnectError: the server is gone
            client.predict(api_name="/process_tasks")
    assert server.process.wait(timeout=30) == 3

    server.restart()
    assert (server.url, server.port) == (url, port)
    with open_client(server.url) as client:
        api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        model = api["/process_prompt_and_add_tasks"]["parameters"][1]
        assert model["parameter_default"] == "t2v_fusionix"
        counter = faults.read_counter(server.url)  # kept across the restart, like WanGP's outputs
        assert (counter["total"], counter["interrupted"], counter["completed"]) == (1, 1, 0)

    server.kill()
    assert server.process.poll() is not None
