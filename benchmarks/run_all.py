"""Every benchmark in benchmarks/, one after another (`make bench`; `make bench-quick`).

A benchmark is any benchmarks/*.py but helper modules: names starting with "_", and
NOT_SCRIPTS. PARTS are figures that another script already runs (identity.py runs tokens.py
and reads.py in one setup): they are run through it, not twice. Each script runs in its own
process, with its output as it comes; a summary follows, and the exit status is 1 when any
script failed (exited non-zero, or ran out of --timeout).

With --quick, each script gets --quick: the same code paths at tiny sizes, in seconds, so
none of them rots unseen (CI runs this). Their figures are marked and not to be quoted.

Usage: python benchmarks/run_all.py [--quick] [--timeout SECONDS] [names ...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOT_SCRIPTS = {"job_actors", "run_all"}  # a worker's job module; this runner
PARTS = {"tokens": "identity", "reads": "identity"}  # figure -> the script that runs it


def scripts() -> list[str]:
    """Every benchmark script's name (without .py), sorted."""
    return sorted(
        path.stem
        for path in HERE.glob("*.py")
        if not path.stem.startswith("_") and path.stem not in NOT_SCRIPTS
    )


def run_one(name: str, quick: bool, timeout: float | None) -> tuple[int | None, float]:
    """Run benchmarks/<name>.py; its exit status (None: timed out) and seconds taken."""
    argv = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if quick else [])]
    started = time.perf_counter()
    # A session of its own: on a timeout, the script and its servers and workers all stop.
    process = subprocess.Popen(argv, start_new_session=True)
    try:
        code: int | None = process.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
        print(f"!! benchmarks/{name}.py ran out of its {timeout:g} s: interrupted", flush=True)
        stop(process)
    except KeyboardInterrupt:
        stop(process)
        raise
    return code, time.perf_counter() - started


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C to the script's process group (its cleanup runs: databases, temporary folders,
    the servers' own shutdown), then SIGKILL if it is still there after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="pass --quick to every script: seconds each, tiny sizes, figures not to be quoted",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds allowed per script (default: none; 120 with --quick)",
    )
    parser.add_argument("names", nargs="*", help="only these scripts (default: all)")
    args = parser.parse_args()
    timeout = args.timeout or (120.0 if args.quick else None)
    known = scripts()
    unknown = [name.removesuffix(".py") for name in args.names]
    unknown = [name for name in unknown if name not in known]
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)} (there are: {', '.join(known)})")
    wanted = [name.removesuffix(".py") for name in args.names] or [
        name for name in known if name not in PARTS
    ]

    results: list[tuple[str, int | None, float]] = []
    began = time.perf_counter()
    for name in wanted:
        print(f"\n== benchmarks/{name}.py{' --quick' if args.quick else ''}", flush=True)
        code, seconds = run_one(name, args.quick, timeout)
        results.append((name, code, seconds))

    print(f"\n== {len(results)} benchmarks in {time.perf_counter() - began:.0f} s", flush=True)
    for name, code, seconds in results:
        outcome = "ok" if code == 0 else f"FAILED (exit {code})" if code else "FAILED (timed out)"
        print(f"  {name:<12} {seconds:6.1f} s  {outcome}")
    for part, whole in PARTS.items():
        if not args.names:
            print(f"  ({part}.py ran inside {whole}.py)")
    failed = [name for name, code, _ in results if code != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
