"""Mixed load (issue 25): firms doing what they do, all at once, through the real HTTP API,
on one `bpo serve` process and then on two replicas behind a reverse proxy. Printed, never
asserted.

Setup (benchmarks/load/world.py): a fresh database (benchmarks/_services.py: migrated,
dropped at the end); --firms firms, each with an API client (every client scope), the
starter chart, a confirmed EUR bank account, a record class and a webhook endpoint for
every event; --staff provider staff assigned to every firm; the catalog service they work;
a sanctions list (the whole OFAC SDN list; --quick: a ten-entry sample). One `bpo worker`
(relay, scheduler, every queue: statement imports, webhook deliveries, ...) runs through
both configurations, and a webhook receiver answers its deliveries with 200s.

The load (benchmarks/load/mix.py): --connections keep-alive HTTP/1.1 connections from this
process (a small asyncio client on uvloop), closed loop, each drawing actions by weight for
a random firm or staff member; the weights are printed. First every firm gets a token over
POST /oauth/token; then --warmup seconds of the mix (not counted: screening indexes build,
pools fill); then --seconds measured; then the worker's backlog is awaited (--drain).

Configurations:
  one replica   the client connects to one `bpo serve` (Granian, one process).
  two replicas  two `bpo serve` processes behind nginx (when /usr/sbin/nginx or nginx on
                PATH exists: a generated configuration, round robin, upstream keep-alive),
                else on one port with SO_REUSEPORT (see benchmarks/load/topology.py); the
                output says which. Each replica has its own --pool database connections.

Figures, per configuration: per operation count, answers per second, p50/p95/p99 ms and
errors (a status the operation does not expect, a failed connection, or a download that
is not what was uploaded; samples are printed, with the server's log lines of any 5xx);
all requests per second; CPU by role (API replicas, proxy, worker, PostgreSQL, Redis,
receiver, this client, other work on the machine) from /proc; the worker's backlog when
the window closed and how long it took to drain. Then both side by side, and the scaling
factor: requests per second on two replicas over one. Everything shares this machine's
cores: the client, PostgreSQL, Redis, the worker, the proxy and the replicas, and any
other work running.

The database and broker: --database-url (default $BPO_BENCH_DATABASE_URL, else
$BPO_TEST_DATABASE_URL, else an embedded PostgreSQL) and --broker-url ($BPO_BENCH_BROKER_URL,
else $BPO_TEST_BROKER_URL, else an embedded Redis); the broker keys get a namespace of their
own, so other workers on the same Redis never see these jobs.

Usage: python benchmarks/load.py [--seconds 60] [--warmup 10] [--firms 20] [--connections 16]
       [--staff 4] [--pool 16] [--drain 120] [--proxy auto|nginx|reuseport]
       [--only one|two] [--database-url URL] [--broker-url URL] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _cli
from benchmarks._identity import server_env
from benchmarks._load import Server, Watch, cpu_snapshot, free_port, postmaster_of, run
from benchmarks._services import services
from benchmarks.load import report, topology
from benchmarks.load.mix import first_tokens, run_mix
from benchmarks.load.world import World, backlog, seed, staff_tokens
from sqlalchemy import make_url

from bpo.models import load_all_models


def configure(args: argparse.Namespace) -> None:
    """Where benchmarks/_services.py looks for the database and the broker."""
    if args.database_url:
        os.environ["BPO_TEST_DATABASE_URL"] = args.database_url
    if args.broker_url:
        os.environ["BPO_TEST_BROKER_URL"] = args.broker_url


def without_credentials(url: str) -> str:
    """A broker URL without its credentials."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}"


def proxy_kind(wanted: str) -> str:
    if wanted == "auto":
        return "nginx" if topology.nginx_binary() else "reuseport"
    if wanted == "nginx" and not topology.nginx_binary():
        raise SystemExit("--proxy nginx: no nginx here (e.g. apt-get install nginx-light)")
    return wanted


@contextlib.contextmanager
def front_of(label: str, env: dict[str, str], proxy: str) -> Iterator[topology.Front]:
    if label == "one":
        with topology.one_replica(env, free_port()) as front:
            yield front
    else:
        ports = (free_port(), free_port())
        with topology.two_replicas(env, free_port(), ports, proxy) as front:
            yield front


def measure(
    front: topology.Front,
    world: World,
    args: argparse.Namespace,
    url: str,
    secret_key: str,
    watch: Watch,
    helpers: dict[str, Server],
) -> report.Outcome:
    """Tokens, warm-up, the measured window with CPU snapshots around it, the drain."""
    since = {"worker": len(report.log_text(helpers["worker"]))}
    issuer = f"http://127.0.0.1:{front.port}"
    world.staff_tokens = run(staff_tokens(url, secret_key, issuer, world.staff))
    got = run(first_tokens(front.port, world))
    if got.errors:
        print("\n".join(report.recorder_errors(got)))
        raise SystemExit("the firms' first tokens failed")
    warm = run(run_mix(front.port, world, args.connections, args.warmup, seed=1))
    print(
        f"  warm-up {args.warmup:g} s: {warm.requests:,} requests, {warm.errors} errors",
        flush=True,
    )
    named = front.roles() | {server.process.pid: role for role, server in helpers.items()}
    before, machine, began = cpu_snapshot(), topology.machine_cpu(), time.perf_counter()
    rec = run(run_mix(front.port, world, args.connections, args.seconds, seed=2))
    machine, window = topology.machine_cpu() - machine, time.perf_counter() - began
    cpu = topology.cpu_by_role(before, cpu_snapshot(), named, watch)
    load_average = Path("/proc/loadavg").read_text().split()[0]
    at_end = run(backlog(url, world.firms))
    started, after = time.perf_counter(), at_end
    while not after.empty and time.perf_counter() - started < args.drain:
        time.sleep(0.5)
        after = run(backlog(url, world.firms))
    drained = time.perf_counter() - started if after.empty else None
    outcome = report.Outcome(front.label, front.how, rec, cpu, at_end, drained, after)
    outcome.load_average, outcome.machine_s, outcome.cpu_window = load_average, machine, window
    request_ids = [r for s in rec.ops.values() for r in s.request_ids]
    servers = {f"api {n}": r for n, r in enumerate(front.replicas, start=1)}
    outcome.logs = report.log_lines_of(servers | {"worker": helpers["worker"]}, request_ids, since)
    for log in front.logs:  # the proxy's own complaints (an upstream refused, timed out)
        complaints = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if any(level in line for level in ("[error]", "[crit]", "[alert]", "[emerg]"))
        ]
        if complaints:
            outcome.logs["proxy"] = "\n".join(complaints[-3:]) + f"\n({len(complaints)} in all)"
    return outcome


def main() -> None:
    parser = _cli.parser(__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured, per configuration")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of the mix first")
    parser.add_argument("--firms", type=int, default=20, help="tenants, each with an API client")
    parser.add_argument("--connections", type=int, default=16, help="client connections")
    parser.add_argument("--staff", type=int, default=4, help="provider staff working the queue")
    parser.add_argument(
        "--pool", type=int, default=16, help="database connections per replica (BPO_DB_POOL_SIZE)"
    )
    parser.add_argument(
        "--drain", type=float, default=120.0, help="seconds to wait for the worker's backlog"
    )
    parser.add_argument(
        "--proxy",
        choices=("auto", "nginx", "reuseport"),
        default="auto",
        help="two replicas behind nginx, or on one SO_REUSEPORT port (auto: nginx if installed)",
    )
    parser.add_argument("--only", choices=("one", "two"), help="one configuration only")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BPO_BENCH_DATABASE_URL")
        or os.environ.get("BPO_TEST_DATABASE_URL", ""),
        help="PostgreSQL server for the throwaway database (default: $BPO_BENCH_DATABASE_URL, "
        "else $BPO_TEST_DATABASE_URL, else an embedded one)",
    )
    parser.add_argument(
        "--broker-url",
        default=os.environ.get("BPO_BENCH_BROKER_URL") or os.environ.get("BPO_TEST_BROKER_URL", ""),
        help="Redis or RabbitMQ (default: $BPO_BENCH_BROKER_URL, else $BPO_TEST_BROKER_URL, "
        "else an embedded Redis)",
    )
    quick = {"seconds": 2.0, "warmup": 1.0, "firms": 2, "connections": 4, "staff": 2, "pool": 4,
             "drain": 5.0}  # fmt: skip
    args = _cli.parse(parser, quick)
    t0 = time.perf_counter()
    configure(args)
    load_all_models()
    proxy = proxy_kind(args.proxy)
    labels = [args.only] if args.only else ["one", "two"]
    outcomes: list[report.Outcome] = []
    with services() as found, tempfile.TemporaryDirectory(prefix="bpo-load-") as tmp:
        secret_key = secrets.token_urlsafe(32)
        # BPO_PORT here is the worker's, which never listens; each replica gets its own.
        env = server_env(found.database_url, found.broker_url, secret_key, free_port())
        env |= {
            "BPO_DATA_DIR": str(Path(tmp) / "data"),  # the records store, shared by replicas
            "BPO_BROKER_NAMESPACE": f"bpo-load-{uuid.uuid4().hex[:8]}",
            "BPO_WEBHOOK_ALLOWLIST": "127.0.0.1",
            "BPO_DB_POOL_SIZE": str(args.pool),
            # No signups in this mix: the warm pool's refill (new tenant schemas, at the
            # worker's start) would otherwise be measured as part of the first window.
            "BPO_TENANT_POOL_SIZE": "0",
        }
        hook_port = free_port()
        started = time.perf_counter()
        world = run(
            seed(
                found.database_url,
                secret_key,
                args.firms,
                args.staff,
                f"http://127.0.0.1:{hook_port}/hooks",
                args.quick,
            )
        )
        database = str(make_url(found.database_url).database)
        watch = Watch(postmaster=run(postmaster_of(found.database_url)), database=database)
        server = make_url(found.database_url).set(database="")
        where = "embedded" if found.embedded else server.render_as_string(hide_password=True)
        print(
            f"{os.cpu_count()} cores shared by this client, PostgreSQL, Redis, the worker, the "
            "proxy and the replicas (and any other work running here)\n"
            f"database {database} on {where}; broker {without_credentials(found.broker_url)} "
            f"(namespace {env['BPO_BROKER_NAMESPACE']})\n"
            f"{len(world.firms)} firms, {len(world.staff)} staff, sanctions list {world.sanctions}"
            f" (set up in {time.perf_counter() - started:.1f} s)\n"
            f"{args.connections} connections, closed loop; warm-up {args.warmup:g} s, measured "
            f"{args.seconds:g} s per configuration; pool {args.pool} connections per replica\n"
            "the mix (weights per 100 actions):",
        )
        print("\n".join(report.mix_lines()), flush=True)
        with (
            topology.receiver(hook_port) as hooks,
            topology.worker(env, found.database_url) as worker,
        ):
            helpers = {"worker": worker, "receiver": hooks}
            for label in labels:
                begun = time.perf_counter()
                with front_of(label, env, proxy) as front:
                    up = time.perf_counter() - begun
                    print(f"\n== {front.label} (up in {up:.1f} s): {front.how}", flush=True)
                    outcome = measure(
                        front, world, args, found.database_url, secret_key, watch, helpers
                    )
                outcomes.append(outcome)
                print(f"measured {outcome.rec.seconds:.1f} s:")
                print("\n".join(report.op_table(outcome.rec)))
                print("\n".join(report.cpu_lines(outcome)))
                print("\n".join(report.backlog_lines(outcome)))
                print("\n".join(report.error_lines(outcome)), flush=True)
            stopping = time.perf_counter()
        print(f"(worker and receiver stopped in {time.perf_counter() - stopping:.1f} s)")
        stopping = time.perf_counter()
    print(f"(database, tenant schemas and roles dropped in {time.perf_counter() - stopping:.1f} s)")
    print(f"\n== summary (the run took {time.perf_counter() - t0:.0f} s in all)")
    print("\n".join(report.summary(outcomes)))
    if len(outcomes) == 2:
        one, two = outcomes
        print(
            f"\nscaling factor, two replicas / one: {two.rate / one.rate:.2f} "
            f"({two.rate:,.1f} / {one.rate:,.1f} requests/s). API replicas used "
            f"{one.share('api'):.0f}% then {two.share('api'):.0f}% of a core; the machine was "
            f"{one.busy:.0f}% then {two.busy:.0f}% busy ({os.cpu_count()} cores shared by the "
            f"client, PostgreSQL, the worker, the proxy and the replicas; other work "
            f"{one.share('other'):.0f}% then {two.share('other'):.0f}% of a core)."
        )
    errors = sum(o.rec.errors for o in outcomes)
    print(f"errors: {errors}" + (" (see the samples above)" if errors else ""))


if __name__ == "__main__":
    main()
