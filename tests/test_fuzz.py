"""API fuzz stage: schemathesis runs every operation of the app's own OpenAPI schema against
the running `bpo serve`, and fails on any 5xx or any response the schema does not describe.

Every route added later is fuzzed by this test automatically (BPO_FUZZ_EXAMPLES per
operation, 100 by default; `make fuzz` runs only this stage).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bpo.settings import Settings
from tests.support.processes import spawn_serve

EXAMPLES = os.environ.get("BPO_FUZZ_EXAMPLES", "100")


@pytest.mark.fuzz
def test_schemathesis_finds_no_server_error_or_schema_violation(
    settings: Settings, tmp_path: Path
) -> None:
    server, base = spawn_serve(settings.database_url, settings.broker_url, BPO_LOG_LEVEL="WARNING")
    try:
        executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
        assert executable, "schemathesis is part of the dev extra"
        result = subprocess.run(
            [
                executable,
                "run",
                f"{base}/schema/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                EXAMPLES,
                "--seed",
                os.environ.get("BPO_FUZZ_SEED", "20261123"),
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        server.send_signal(signal.SIGTERM)
        _, server_log = server.communicate(timeout=20)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout
    assert "Traceback" not in server_log, server_log[-4000:]
