"""How expensive is the mock WanGP to start and to connect to, compact vs full surface?

Prints, for the gradio in this interpreter: server start time, median gradio_client ``Client()``
construction time over a few connections, and their ratio to a one-endpoint gradio app measured
in the same process (ratios travel between machines; absolute times do not). For reference, a
plain ``Client()`` to a live WanGP 12.60 took 0.7-1.2 s (CONTRACT.md).

    python bench/mock_surface.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

for key, value in {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
                   "HF_HUB_DISABLE_TELEMETRY": "1"}.items():
    os.environ.setdefault(key, value)


def connect_times(url: str, repeat: int) -> list[float]:
    from gradio_client import Client

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        client = Client(url, verbose=False, download_files=False)
        times.append(time.perf_counter() - start)
        client.close()
    return times


def baseline(repeat: int) -> float:
    import gradio as gr

    with gr.Blocks() as demo:
        box = gr.Textbox()
        gr.Button().click(lambda s: s, box, box)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        return statistics.median(connect_times(demo.local_url, repeat))
    finally:
        demo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import gradio

    from vidbridge.plugins.mock_backend import MockServer

    base = baseline(args.repeat)
    print(f"gradio {gradio.__version__}: one-endpoint app Client() median {base:.3f} s")
    for full in (False, True):
        start = time.perf_counter()
        with MockServer(full_surface=full) as server:
            started = time.perf_counter() - start
            median = statistics.median(connect_times(server.url, args.repeat))
            size = f"{len(server.blocks.fns)} endpoints, {len(server.blocks.blocks)} blocks"
        label = "full" if full else "compact"
        print(f"{label:8s} ({size}): start {started:.2f} s, Client() median {median:.3f} s "
              f"= {median / base:.1f}x baseline")


if __name__ == "__main__":
    main()
