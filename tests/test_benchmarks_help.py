"""Every benchmark script answers --help and offers --quick, so `make bench-quick` (CI) can
run each one at tiny sizes and none rots unseen. Only --help runs here: fast, no services.

A script is any benchmarks/*.py but helper modules (a name starting with "_", or HELPERS):
a new benchmark without argparse and --quick fails this test.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
HELPERS = {"job_actors"}  # the jobs a benchmark's worker imports; not a script


def benchmark_scripts() -> list[str]:
    return sorted(
        path.name
        for path in BENCHMARKS.glob("*.py")
        if not path.name.startswith("_") and path.stem not in HELPERS
    )


def test_the_scripts_are_found() -> None:
    found = benchmark_scripts()
    for name in ("db_fixture.py", "identity.py", "tenancy.py", "work.py", "run_all.py"):
        assert name in found
    assert "_services.py" not in found
    assert "job_actors.py" not in found


@pytest.fixture(scope="module")
def helps() -> dict[str, tuple[int, str, str]]:
    """Each script's `--help`: exit status, stdout, stderr (all started at once: mostly
    import time, so they overlap)."""
    running = {
        script: subprocess.Popen(
            [sys.executable, str(BENCHMARKS / script), "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script in benchmark_scripts()
    }
    answers = {}
    for script, process in running.items():
        out, err = process.communicate(timeout=120)
        answers[script] = (process.returncode, out, err)
    return answers


@pytest.mark.parametrize("script", benchmark_scripts())
def test_help_exits_zero_and_offers_quick(
    script: str, helps: dict[str, tuple[int, str, str]]
) -> None:
    code, out, err = helps[script]
    assert code == 0, err
    assert out.startswith("usage:"), out
    assert "--quick" in out, f"{script} --help does not offer --quick"


def test_run_all_runs_every_script() -> None:
    """run_all.py finds the same scripts (itself aside), each run alone or inside another."""
    spec = importlib.util.spec_from_file_location("bench_run_all", BENCHMARKS / "run_all.py")
    assert spec is not None and spec.loader is not None
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    scripts = [name.removesuffix(".py") for name in benchmark_scripts()]
    assert run_all.scripts() == [name for name in scripts if name != "run_all"]
    for part, whole in run_all.PARTS.items():
        assert part in run_all.scripts()
        assert whole in run_all.scripts()
        assert whole not in run_all.PARTS
