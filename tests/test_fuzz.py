"""API fuzz stage: schemathesis runs every operation of the app's own OpenAPI schema against
the running `bpo serve`, and fails on any 5xx or any response the schema does not describe.

Every route added later is fuzzed by this test automatically (BPO_FUZZ_EXAMPLES per
operation, 100 by default; `make fuzz` runs only this stage).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bpo.core.db import Database
from bpo.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.support.auth import staff_admin_token
from tests.support.processes import spawn_serve

EXAMPLES = os.environ.get("BPO_FUZZ_EXAMPLES", "100")


@pytest.mark.fuzz
@pytest.mark.timeout(1500)  # schemathesis itself may take its 900 s on a busy machine
async def test_schemathesis_finds_no_server_error_or_schema_violation(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    # A staff admin's token gets past every guard, so the handlers behind them are fuzzed too;
    # schemathesis also checks that each operation refuses requests without it.
    token = await staff_admin_token(db, settings)
    server, base = spawn_serve(
        settings.database_url,
        settings.broker_url,
        BPO_LOG_LEVEL="WARNING",
        BPO_SECRET_KEY=TEST_SECRET_KEY,
        BPO_BROKER_NAMESPACE=settings.broker_namespace,
    )
    try:
        executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
        assert executable, "schemathesis is part of the dev extra"
        result = await asyncio.to_thread(
            subprocess.run,
            [
                executable,
                "run",
                f"{base}/schema/openapi.json",
                "--checks",
                "all",
                # Valid by the schema yet refused by a business rule (a taken or reserved
                # slug) is correct behaviour, not a failure.
                "--exclude-checks",
                "positive_data_acceptance",
                "--header",
                f"Authorization: Bearer {token}",
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
            cwd=tmp_path,  # schemathesis keeps a cache folder in its working directory
        )
    finally:
        server.send_signal(signal.SIGTERM)
        _, server_log = server.communicate(timeout=20)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # Every generated case passed (warnings such as "cannot validate gzip" are not issues).
    assert re.search(r"(\d+) generated, \1 passed", result.stdout), result.stdout[-4000:]
    assert "Traceback" not in server_log, server_log[-4000:]
