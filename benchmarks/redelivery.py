"""Redelivery figures (issue 25): a worker killed with SIGKILL mid-backlog, printed.

1. For Redis (BPO_TEST_BROKER_URL, or an embedded one) and RabbitMQ (BPO_TEST_AMQP_URL,
   when set): N jobs with side effects (each inserts a row for its key into a tenant table
   inside `exactly_once()`; benchmarks/_redelivery_jobs.py) are committed to the outbox at
   once while one worker process runs (`bpo worker` with that job module loaded, its relay
   inside). When about half of the effects exist, the worker is killed with SIGKILL and a
   new one started at once. Printed: the total time (commit to last effect), the time from
   the kill to the last effect, from the new worker's start to its first effect and to the
   first effect of a message the dead worker held, the number of messages it held (Redis:
   its unacked set, read right after the kill; RabbitMQ: the deliveries flagged as
   redelivered), the deliveries that found their effect already committed (absorbed), and
   exactly-once: rows per key, missing and duplicated.
2. The first job after an idle spell on the embedded default: an embedded Redis, a worker
   with default settings, idle for --idle seconds (2), then one job committed; the time
   from the commit to the job's start, over --samples samples, p50 / max (goal < 20 ms).

On RabbitMQ the worker consumes only the benchmark's queue (queues are shared by everyone
on the virtual host; on Redis, a namespace of its own isolates the run).

Usage: python benchmarks/redelivery.py [--jobs 10000] [--samples 10] [--idle 2]
                                       [--brokers all|redis] [--worker-timeout-ms MS]
                                       [--only kill|idle] [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pika
import redis
from benchmarks import _cli
from benchmarks import _redelivery_jobs as jobs
from benchmarks._services import services
from sqlalchemy import insert, text

from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, issue_tenant_context, tenant_session
from bpo.embedded import EmbeddedRedis
from bpo.jobs.models import OutboxMessage
from bpo.jobs.outbox import enqueue, outbox_row
from bpo.platform.tenants.service import create_tenant

ROOT = Path(__file__).resolve().parents[1]
WORKER = f"""
import os, sys
sys.path.insert(0, {str(ROOT)!r})
import benchmarks._redelivery_jobs as jobs
if os.environ.get("BENCH_ONLY_OWN_QUEUE"):
    import dramatiq

    class _OwnQueueOnly(dramatiq.Worker):
        def __init__(self, broker, **options):
            super().__init__(broker, queues={{jobs.QUEUE, jobs.QUEUE + ".DQ"}}, **options)

    dramatiq.Worker = _OwnQueueOnly  # bpo.jobs.worker builds its worker through this name
from bpo.jobs.worker import run_worker
from bpo.settings import Settings
run_worker(Settings.from_env())
"""


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float  # epoch seconds, just before the spawn

    def tail(self, lines: int = 20) -> str:
        self.log.flush()
        self.log.seek(0)
        return "\n".join(self.log.read().decode(errors="replace").splitlines()[-lines:])


def spawn_worker(database_url: str, broker_url: str, namespace: str, **extra: str) -> Worker:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPO_")}
    env.update(
        BPO_DATABASE_URL=database_url,
        BPO_BROKER_URL=broker_url,
        BPO_BROKER_NAMESPACE=namespace,
        BPO_WORKER_SCHEDULER="false",
        BPO_LOG_LEVEL="WARNING",
        **extra,
    )
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop_worker)
    started = time.time()
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    return Worker(process, log, started)


def stop_worker(worker: Worker) -> None:
    if worker.process.poll() is None:
        worker.process.send_signal(signal.SIGTERM)
        try:
            worker.process.wait(30)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
    worker.log.close()


# --- the tenant and its tables -------------------------------------------------------------


async def make_tenant(db: Database, slug: str) -> TenantContext:
    async with db.sessionmaker.begin() as session:
        created = await create_tenant(session, slug, "Redelivery bench")
    tenant = issue_tenant_context(created.tenant.id, created.tenant.slug)
    async with db.engine.begin() as conn:
        for statement in jobs.DDL:
            await conn.exec_driver_sql(statement.format(schema=f'"{tenant.schema}"'))
    return tenant


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def effects_done(db: Database, tenant: TenantContext) -> int:
    sql = f"SELECT count(*) FROM \"{tenant.schema}\".redelivery_effects WHERE key LIKE 'k%'"
    return int(await scalar(db, sql) or 0)


async def rows_written(db: Database, tenant: TenantContext) -> int:
    schema = f'"{tenant.schema}"'
    return int(
        await scalar(
            db,
            f"SELECT (SELECT count(*) FROM {schema}.redelivery_effects)"
            f" + (SELECT count(*) FROM {schema}.redelivery_absorbed)",
        )
        or 0
    )


async def wait_effect(db: Database, tenant: TenantContext, key: str, timeout: float) -> float:
    """The job's start (epoch seconds, as it recorded it) once its effect exists."""
    sql = f'SELECT min(started) FROM "{tenant.schema}".redelivery_effects WHERE key = :key'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (started := await scalar(db, sql, key=key)) is not None:
            return float(started)
        await asyncio.sleep(0.005)
    raise RuntimeError(f"no effect for {key!r} within {timeout:g} s")


async def commit_one(db: Database, tenant: TenantContext, key: str) -> float:
    """One job in its own tenant transaction; the clock is read just before the commit."""
    async with tenant_session(db.engine, tenant) as session:
        await enqueue(session, jobs.record_effect, key, tenant=tenant)
        return time.time()  # before the commit, which leaving the block makes


async def wait_up(db: Database, tenant: TenantContext, worker: Worker, key: str) -> None:
    """Until the worker has run a job: it is up and consuming."""
    await commit_one(db, tenant, key)
    try:
        await wait_effect(db, tenant, key, 60)
    except RuntimeError:
        raise RuntimeError(f"the worker did not start:\n{worker.tail()}") from None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- what the broker holds ------------------------------------------------------------------


class RedisView:
    def __init__(self, url: str, namespace: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.namespace = namespace

    def _ack_sets(self) -> list[bytes]:
        return list(self.client.scan_iter(f"{self.namespace}:__acks__.*"))

    def held_keys(self) -> list[str]:
        """Keys of the messages fetched and not acked (every ack set: only the dead worker
        consumed so far): read right after the kill, before any maintenance requeues them."""
        ids = [i for key in self._ack_sets() for i in self.client.smembers(key)]
        if not ids:
            return []
        bodies = self.client.hmget(f"{self.namespace}:{jobs.QUEUE}.msgs", ids)
        return [json.loads(body)["args"][0] for body in bodies if body]

    def settled(self, dead_ack_sets: set[bytes]) -> bool:
        """Nothing waiting, and the dead worker's unacked set requeued (so gone)."""
        waiting = self.client.llen(f"{self.namespace}:{jobs.QUEUE}")
        return not waiting and not dead_ack_sets & set(self._ack_sets())

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError):
            for key in self.client.scan_iter(f"{self.namespace}:*"):
                self.client.delete(key)
        self.client.close()


class RabbitView:
    QUEUES = (jobs.QUEUE, f"{jobs.QUEUE}.DQ", f"{jobs.QUEUE}.XQ")

    def __init__(self, url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        for queue in self.QUEUES:  # left over from an interrupted run (a no-op otherwise)
            self.channel.queue_delete(queue)

    def waiting(self) -> int:
        declared = self.channel.queue_declare(jobs.QUEUE, passive=True)
        return int(declared.method.message_count)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            for queue in self.QUEUES:
                self.channel.queue_delete(queue)
        with contextlib.suppress(Exception):
            self.connection.close()


# --- 1. SIGKILL in the middle of a backlog ---------------------------------------------------


async def kill_run(url: str, broker_url: str, name: str, count: int) -> None:
    db = Database(url)
    tenant = await make_tenant(db, f"bench-redeliver-{name}")
    namespace = f"bpo-bench-{uuid.uuid4().hex[:8]}"
    rabbit = name == "rabbitmq"
    view: RedisView | RabbitView = (
        RabbitView(broker_url) if rabbit else RedisView(broker_url, namespace)
    )
    extra = {"BENCH_ONLY_OWN_QUEUE": "1"} if rabbit else {}
    first = spawn_worker(url, broker_url, namespace, **extra)
    second: Worker | None = None
    try:
        await wait_up(db, tenant, first, "warmup-1")
        rows = [
            outbox_row(jobs.record_effect, (f"k{i:06d}",), {}, tenant=tenant) for i in range(count)
        ]
        async with db.engine.connect() as conn, conn.begin():
            for start in range(0, count, 5000):
                await conn.execute(insert(OutboxMessage), rows[start : start + 5000])
            await conn.execute(text("ANALYZE platform.outbox"))
            committed = time.time()  # the commit's round trip is on the clock
        while (done_at_kill := await effects_done(db, tenant)) < count // 2:
            if first.process.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{first.tail()}")
            await asyncio.sleep(0.01)
        first.process.send_signal(signal.SIGKILL)
        killed = time.time()
        await asyncio.to_thread(first.process.wait)
        held_keys: list[str] = []
        dead_sets: set[bytes] = set()
        if isinstance(view, RedisView):
            dead_sets = set(view._ack_sets())
            held_keys = view.held_keys()
        second = spawn_worker(url, broker_url, namespace, **extra)
        requeued: float | None = None  # Redis: when maintenance put them back in the queue

        def note_requeue() -> None:
            nonlocal requeued
            if isinstance(view, RedisView) and requeued is None:
                requeued = None if dead_sets & set(view._ack_sets()) else time.time()

        deadline = time.monotonic() + 300
        while await effects_done(db, tenant) < count:
            if second.process.poll() is not None:
                raise RuntimeError(f"the new worker exited:\n{second.tail()}")
            if time.monotonic() > deadline:
                break  # report what is missing
            note_requeue()
            await asyncio.sleep(0.05)
        # Then until the broker has handed out everything (the dead worker's finished but
        # unacked messages too) and no row has been written for a second.
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now_rows = await rows_written(db, tenant)
            if now_rows != last:
                last, quiet_since = now_rows, time.monotonic()
            note_requeue()
            if isinstance(view, RedisView):
                settled = view.settled(dead_sets)
            else:
                settled = view.waiting() == 0
            if settled and time.monotonic() - quiet_since >= 1.0:
                break
            await asyncio.sleep(0.1)
        back = None if requeued is None else requeued - killed
        await report_kill(
            db, tenant, name, count, done_at_kill, committed, killed, first, second, held_keys, back
        )
    finally:
        for worker in (first, second):
            if worker is not None:
                stop_worker(worker)
        view.close()
        await db.dispose()


async def report_kill(
    db: Database,
    tenant: TenantContext,
    name: str,
    count: int,
    done_at_kill: int,
    committed: float,
    killed: float,
    first: Worker,
    second: Worker,
    held_keys: list[str],
    back: float | None,
) -> None:
    schema = f'"{tenant.schema}"'
    async with db.engine.connect() as conn:
        per_key = dict(
            (
                await conn.execute(
                    text(
                        f"SELECT key, count(*) FROM {schema}.redelivery_effects "
                        "WHERE key LIKE 'k%' GROUP BY key"
                    )
                )
            ).all()
        )
        effects = (
            await conn.execute(
                text(
                    f"SELECT key, pid, redelivered, extract(epoch FROM at)::float8 "
                    f"FROM {schema}.redelivery_effects WHERE key LIKE 'k%'"
                )
            )
        ).all()
        absorbed = (
            await conn.execute(
                text(
                    f"SELECT key, pid, redelivered FROM {schema}.redelivery_absorbed "
                    "WHERE key LIKE 'k%'"
                )
            )
        ).all()
    keys = {f"k{i:06d}" for i in range(count)}
    missing = len(keys - set(per_key))
    duplicated = sum(1 for n in per_key.values() if n > 1)
    extra_rows = sum(n - 1 for n in per_key.values() if n > 1)
    by_first = sum(1 for _, pid, _, _ in effects if pid == first.process.pid)
    after_kill = [at for _, pid, _, at in effects if pid == second.process.pid]
    last_effect = max(at for *_, at in effects)
    if name == "rabbitmq":
        redelivered = [at for _, pid, flag, at in effects if flag and pid == second.process.pid]
        absorbed_redelivered = sum(1 for _, _, flag in absorbed if flag)
        held = len(redelivered) + absorbed_redelivered
        held_note = (
            f"{held} (deliveries flagged redelivered: {len(redelivered)} effects, "
            f"{absorbed_redelivered} already committed)"
        )
    else:
        held_set = set(held_keys)
        redelivered = [
            at for key, pid, _, at in effects if key in held_set and pid == second.process.pid
        ]
        held = len(held_keys)
        held_note = (
            f"{held} (its unacked set right after the kill: {len(redelivered)} run again with "
            f"effect, {held - len(redelivered)} had committed and were absorbed)"
        )
        if back is not None:
            held_note += (
                f"\n  kill -> its messages back in the queue      {back:7.2f} s (heartbeat "
                "timeout, then maintenance; they go to the back of the queue)"
            )
    first_any = min(after_kill) - second.started if after_kill else float("nan")
    first_redelivered = min(redelivered) - second.started if redelivered else float("nan")
    print(
        f"{name:9s} {count:,} jobs with effects, one worker process, SIGKILL at {done_at_kill:,} "
        f"effects ({by_first:,} by the killed worker):\n"
        f"  total (commit -> last effect)               {last_effect - committed:7.2f} s\n"
        f"  kill -> last effect                         {last_effect - killed:7.2f} s\n"
        f"  new worker start -> its first effect        {first_any:7.2f} s\n"
        f"  new worker start -> first redelivered effect {first_redelivered:6.2f} s "
        f"(a message the dead worker held)\n"
        f"  messages the dead worker held               {held_note}\n"
        f"  deliveries absorbed by exactly_once()       {len(absorbed)} "
        f"(effect already committed: unacked at the kill, or republished by the relay)\n"
        f"  exactly once: {len(per_key):,} of {count:,} keys have an effect; missing {missing}, "
        f"duplicated {duplicated} ({extra_rows} extra rows)"
    )


# --- 2. the first job after an idle spell ---------------------------------------------------


async def idle_run(
    url: str, broker_url: str, samples: int, idle: float, timeout_ms: int | None
) -> None:
    db = Database(url)
    tenant = await make_tenant(db, "bench-redeliver-idle")
    # The defaults, as `bpo up` runs it (unless --worker-timeout-ms says otherwise).
    extra = {"BPO_WORKER_TIMEOUT_MS": str(timeout_ms)} if timeout_ms else {}
    worker = spawn_worker(url, broker_url, "bpo", **extra)
    settings = "default settings" if not timeout_ms else f"BPO_WORKER_TIMEOUT_MS={timeout_ms}"
    try:
        await wait_up(db, tenant, worker, "warmup-idle")
        waits = []
        for n in range(samples):
            await asyncio.sleep(idle)
            key = f"idle-{n}"
            before_commit = await commit_one(db, tenant, key)
            waits.append((await wait_effect(db, tenant, key, 30) - before_commit) * 1000)
        print(
            f"first job after {idle:g} s idle, embedded Redis, {settings}: commit -> start "
            f"p50 {statistics.median(waits):.1f} ms, max {max(waits):.1f} ms over {samples} "
            f"(goal < 20 ms; each: {', '.join(f'{w:.0f}' for w in waits)} ms)"
        )
    finally:
        stop_worker(worker)
        await db.dispose()


def main() -> None:
    parser = _cli.parser(__doc__)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in the killed backlog")
    parser.add_argument("--samples", type=int, default=10, help="idle-then-one-job samples")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds idle before each job")
    parser.add_argument(
        "--brokers",
        choices=("all", "redis"),
        default="all",
        help="all: Redis and RabbitMQ (when BPO_TEST_AMQP_URL is set); redis: Redis only",
    )
    parser.add_argument(
        "--worker-timeout-ms",
        type=int,
        help="the idle figure with this BPO_WORKER_TIMEOUT_MS (the longest an idle Redis "
        "consumer sleeps between fetches) instead of the default",
    )
    parser.add_argument("--only", choices=("kill", "idle"))
    quick = {"jobs": 300, "samples": 3, "idle": 2.0, "brokers": "redis"}
    args = _cli.parse(parser, quick)
    with services() as found:
        print(
            f"{os.cpu_count()} cores shared by this process, the workers, PostgreSQL and the "
            "broker (and whatever else runs on the machine)"
        )
        if args.only != "idle":
            redis_url = found.broker_url
            brokers = [("redis", redis_url)]
            if args.brokers == "all" and (amqp := os.environ.get("BPO_TEST_AMQP_URL")):
                brokers.append(("rabbitmq", amqp))
            for name, broker in brokers:
                asyncio.run(kill_run(found.database_url, broker, name, args.jobs))
        if args.only != "kill":
            with tempfile.TemporaryDirectory(prefix="bpo-bench-redis-") as folder:
                embedded = EmbeddedRedis(Path(folder))
                try:
                    url = embedded.start()
                    asyncio.run(
                        idle_run(
                            found.database_url, url, args.samples, args.idle, args.worker_timeout_ms
                        )
                    )
                finally:
                    embedded.stop()


if __name__ == "__main__":
    main()
