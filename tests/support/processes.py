"""Running the real `bpo` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

SERVICE_VARIABLES = ("BPO_DATABASE_URL", "BPO_BROKER_URL", "BPO_SECRET_KEY", "BPO_DATA_DIR")


def bpo_env(**variables: str) -> dict[str, str]:
    """The test's environment without any BPO_* service variables, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPO_")}
    env.update(variables)
    env.setdefault("BPO_LOG_LEVEL", "INFO")
    return env


def bpo(
    *args: str, env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bpo", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn(*args: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bpo", *args],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def spawn_serve(
    database_url: str | None, broker_url: str | None, **extra: str
) -> tuple[subprocess.Popen[str], str]:
    """`bpo serve` on a free port against the given services; returns it and its base URL."""
    assert database_url and broker_url
    port = free_port()
    env = bpo_env(
        BPO_DATABASE_URL=database_url, BPO_BROKER_URL=broker_url, BPO_PORT=str(port), **extra
    )
    base = f"http://127.0.0.1:{port}"
    process = spawn("serve", env=env)
    wait_http(f"{base}/health/ready", 30, process)
    return process, base


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, timeout: float, process: subprocess.Popen[str] | None = None) -> int:
    """Poll `url` until it answers 200; returns the status last seen."""
    deadline = time.monotonic() + timeout
    status = 0
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"process exited with {process.returncode}: {stderr}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status = response.status
                if status == 200:
                    return status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout} s (last status {status})")


class OutputWatcher:
    """Collects a process's stdout (or stderr) in a thread so a test can wait for a line."""

    def __init__(self, process: subprocess.Popen[str], stream: str = "stdout") -> None:
        self.lines: list[str] = []
        self._process = process
        self._stream = process.stdout if stream == "stdout" else process.stderr
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._stream is not None
        for line in self._stream:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self._process.poll() is not None and not self._thread.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not printed within {timeout} s: {''.join(self.lines)}")

    @property
    def text(self) -> str:
        self._thread.join(5)
        return "".join(self.lines)
