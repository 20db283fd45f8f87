"""Process plumbing shared by the long-running commands."""

from __future__ import annotations

import signal
import threading


def install_stop_handlers(stop: threading.Event) -> None:
    def handle(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
