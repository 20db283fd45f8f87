"""`bpo up` from an empty data dir to ready, a second start on the same data, and Ctrl-C.

"Ready" is the banner, printed once /health/ready answers 200 (embedded PostgreSQL and Redis
up, migrations and demo seed done, API and worker running). This is `make up` minus the
one-time virtualenv install. Usage: python benchmarks/startup.py [repeats=3] [--quick]
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _cli


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_and_stop(data_dir: Path) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPO_")}
    env.update(BPO_DATA_DIR=str(data_dir), BPO_PORT=str(free_port()), BPO_LOG_LEVEL="WARNING")
    with tempfile.TemporaryFile() as errors:  # stderr, shown if it fails
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "bpo", "up"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        ready = threading.Event()

        def watch() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                if "Press Ctrl-C to stop." in line:
                    ready.set()

        def fail(problem: str) -> NoReturn:
            if process.poll() is None:  # Ctrl-C first: it stops its PostgreSQL and Redis
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            errors.seek(0)
            tail = errors.read().decode(errors="replace").splitlines()[-30:]
            raise SystemExit(f"bpo up {problem}; its stderr ends:\n" + "\n".join(tail))

        threading.Thread(target=watch, daemon=True).start()
        deadline = time.monotonic() + 180
        while not ready.wait(0.05):
            if process.poll() is not None:
                fail(f"exited with {process.returncode} before it was ready")
            if time.monotonic() > deadline:
                fail("was not ready within 180 s")
        to_ready = time.perf_counter() - started
        stopping = time.perf_counter()
        process.send_signal(signal.SIGINT)
        code = process.wait(60)
        if code != 0:
            fail(f"exited with {code} on Ctrl-C")
        return to_ready, time.perf_counter() - stopping


def main() -> None:
    parser = _cli.parser(__doc__)
    parser.add_argument("repeats", type=int, nargs="?", default=3, help="clean starts (each +1)")
    repeats = _cli.parse(parser, {"repeats": 1}).repeats
    first, second, stops = [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bpo-startup-") as tmp:
            data_dir = Path(tmp) / "data"
            ready, stop = start_and_stop(data_dir)
            first.append(ready)
            stops.append(stop)
            ready, stop = start_and_stop(data_dir)
            second.append(ready)
            stops.append(stop)

    def summary(label: str, samples: list[float]) -> None:
        each = ", ".join(f"{x:.2f}" for x in samples)
        print(f"{label:<34} {statistics.median(samples):.2f} s (median; runs: {each})")

    summary("bpo up, clean data dir -> ready:", first)
    summary("bpo up, second start -> ready:", second)
    summary("Ctrl-C -> everything stopped:", stops)


if __name__ == "__main__":
    main()
