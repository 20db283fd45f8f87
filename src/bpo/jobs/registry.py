"""Jobs are declared without a broker and bound to one when a process starts.

Dramatiq's `@actor` needs a broker at import time; declaring specs here keeps imports free of
side effects (create_app and the worker choose the broker from settings).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

import dramatiq

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class JobSpec:
    fn: Callable[..., Any]
    name: str
    queue: str
    options: dict[str, Any] = field(default_factory=dict)
    every: timedelta | None = None  # periodic: the scheduler enqueues it once per period

    @property
    def time_limit_ms(self) -> int:
        """How long one run may take (`time_limit=` in ms, as Dramatiq's; 10 minutes)."""
        return int(self.options.get("time_limit", DEFAULT_TIME_LIMIT_MS))


DEFAULT_TIME_LIMIT_MS = 600_000
# The runner enforces time limits inside the job's event loop (a cancelled coroutine rolls
# back and returns its connection); Dramatiq's own limit, an exception raised into the
# thread, stays only as a backstop for a job that blocks its loop.
BACKSTOP_MS = 30_000
JOBS: dict[str, JobSpec] = {}
# Modules whose jobs register themselves on import.
JOB_MODULES = (
    "bpo.jobs.jobs",
    "bpo.platform.tenants.jobs",
    "bpo.webhooks.jobs",
    "bpo.people.jobs",
    "bpo.billing.jobs",
    "bpo.work.jobs",
    "bpo.ledger.jobs",
    "bpo.records.jobs",
    "bpo.settlements.jobs",
    "bpo.compliance.jobs",
)


def load_job_modules() -> None:
    for module in JOB_MODULES:
        importlib.import_module(module)


def job(
    *,
    queue: str = "default",
    name: str | None = None,
    every: timedelta | None = None,
    **options: Any,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare an `async def` as a job (options as Dramatiq's: max_retries, min_backoff, ...).

    `every` makes it periodic: `bpo scheduler` (or a worker holding the scheduler lock)
    enqueues it once per period."""

    def register(fn: Callable[P, R]) -> Callable[P, R]:
        spec = JobSpec(fn=fn, name=name or fn.__name__, queue=queue, options=options, every=every)
        if spec.name in JOBS and JOBS[spec.name].fn is not fn:
            raise ValueError(f"job {spec.name!r} is declared twice")
        JOBS[spec.name] = spec
        return fn

    return register


def bind_jobs(
    broker: dramatiq.Broker, wrap: Callable[[JobSpec], Callable[..., Any]] | None = None
) -> dict[str, dramatiq.Actor[Any, Any]]:
    """Declare every known job on `broker`; returns the actors by name.

    `wrap` turns a spec into the function Dramatiq runs (the worker's job context); senders
    only need the names and queues."""
    load_job_modules()

    actors: dict[str, dramatiq.Actor[Any, Any]] = {}
    for spec in JOBS.values():
        if spec.name in broker.actors:
            actors[spec.name] = broker.get_actor(spec.name)
            continue
        options = dict(spec.options)
        if wrap is not None:
            options["time_limit"] = spec.time_limit_ms + BACKSTOP_MS
        actors[spec.name] = dramatiq.Actor(
            wrap(spec) if wrap else spec.fn,
            broker=broker,
            actor_name=spec.name,
            queue_name=spec.queue,
            priority=0,
            options=options,
        )
    return actors
