"""Sending jobs from the API process: a broker made on first use, shared by all requests."""

from __future__ import annotations

import threading
from typing import Any

import dramatiq

from bpo.jobs.broker import build_broker
from bpo.jobs.registry import bind_jobs


class JobSender:
    """Thread-safe; `send` blocks on the broker, so async code calls it in a thread."""

    def __init__(self, url: str, *, namespace: str = "bpo") -> None:
        self._url = url
        self._namespace = namespace
        self._broker: dramatiq.Broker | None = None
        self._lock = threading.Lock()

    def send(self, job_name: str, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            if self._broker is None:
                self._broker = build_broker(self._url, namespace=self._namespace)
                bind_jobs(self._broker)
            broker = self._broker
        broker.get_actor(job_name).send(*args, **kwargs)

    def close(self) -> None:
        with self._lock:
            if self._broker is not None:
                self._broker.close()
                self._broker = None
