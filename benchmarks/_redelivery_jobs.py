"""The job of benchmarks/redelivery.py, declared in the workers it spawns (and in the benchmark).

`record_effect` inserts one row for its key inside `exactly_once()` into a tenant table
without a unique key, so a job whose effect ran twice would leave two rows. Each row says
which worker process wrote it, when the job started (epoch seconds, the worker's clock) and
whether the broker flagged the delivery as a redelivery (RabbitMQ does; Redis has no such
flag: the benchmark reads the dead worker's unacked set instead). A delivery that finds its
effect already committed (a message the dead worker had finished but not acked, or one its
relay had published but not marked sent) writes a row to `redelivery_absorbed`, then ends
as `exactly_once()` ends it: successfully, changing nothing.

The queue is the benchmark's own, so a worker restricted to it (RabbitMQ, whose queues are
shared by everyone on the virtual host) takes no one else's messages.
"""

from __future__ import annotations

import os
import time

from dramatiq.middleware import CurrentMessage
from sqlalchemy import BigInteger, Boolean, Column, Float, Integer, MetaData, Table, Text

from bpo.jobs.context import AlreadyProcessed, current_job, exactly_once
from bpo.jobs.registry import job

QUEUE = "bench_redelivery"
_metadata = MetaData(schema="tenant")
EFFECTS = Table(
    "redelivery_effects",
    _metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started", Float, nullable=False),
    Column("redelivered", Boolean),
)
ABSORBED = Table(
    "redelivery_absorbed",
    _metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("redelivered", Boolean),
)
# Owner DDL, run by the benchmark after provisioning: the tenant role gets DML on both
# through the schema's default privileges. `at` is the commit-side clock of the effect.
DDL = (
    "CREATE TABLE {schema}.redelivery_effects (id bigserial PRIMARY KEY, key text NOT NULL, "
    "pid integer NOT NULL, started double precision NOT NULL, redelivered boolean, "
    "at timestamptz NOT NULL DEFAULT clock_timestamp())",
    "CREATE TABLE {schema}.redelivery_absorbed (id bigserial PRIMARY KEY, key text NOT NULL, "
    "pid integer NOT NULL, redelivered boolean, at timestamptz NOT NULL DEFAULT clock_timestamp())",
)


@job(queue=QUEUE, max_retries=3, min_backoff=20, max_backoff=200)
async def record_effect(key: str) -> None:
    started = time.time()
    message = CurrentMessage.get_current_message()
    redelivered = getattr(message, "redelivered", None)  # RabbitMQ's flag; None on Redis
    row = {"key": key, "pid": os.getpid(), "redelivered": redelivered}
    try:
        async with exactly_once() as session:
            await session.execute(EFFECTS.insert().values(started=started, **row))
    except AlreadyProcessed:
        async with current_job().session() as session:
            await session.execute(ABSORBED.insert().values(**row))
        raise
