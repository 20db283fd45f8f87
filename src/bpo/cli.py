"""The `bpo` command: up, serve, worker, migrate, demo, and the tenants, keys, apps, ledger
and sanctions groups."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Annotated, Any

import typer

from bpo.core.commands import check_database, ensure_secret_key, fail, load_settings
from bpo.embedded import database_url_or_embedded
from bpo.settings import Settings

cli = typer.Typer(
    name="bpo",
    help="Back-office outsourcing API: run the stack, the API, workers and migrations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main() -> None:
    from bpo.compliance.commands import sanctions_cli
    from bpo.identity.commands import apps, keys
    from bpo.ledger.commands import ledger
    from bpo.models import load_all_models
    from bpo.platform.tenants.commands import tenants

    load_all_models()  # every command may build or compare schemas
    cli.add_typer(tenants, name="tenants")
    cli.add_typer(keys, name="keys")
    cli.add_typer(apps, name="apps")
    cli.add_typer(ledger, name="ledger")
    cli.add_typer(sanctions_cli, name="sanctions")
    cli()


def require_services(settings: Settings) -> tuple[str, str]:
    if settings.database_url is None:
        fail("BPO_DATABASE_URL is not set (use `bpo up` for a local stack)", code=2)
    if settings.broker_url is None:
        fail("BPO_BROKER_URL is not set (use `bpo up` for a local stack)", code=2)
    return settings.database_url, settings.broker_url


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            fail(f"cannot listen on {host}:{port}: {why} (set BPO_PORT to use another port)")


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind [BPO_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [BPO_PORT]")] = None,
) -> None:
    """Run the API (one process; scale with replicas)."""
    from bpo.app import create_app
    from bpo.core.serving import ServerFailed, run_http

    settings = load_settings(host=host, port=port)
    database_url, _ = require_services(settings)
    check_port_free(settings.host, settings.port)
    check_database(database_url, settings.db_connect_timeout)
    try:
        app: Any = create_app(settings, freeze_heap=True)
        if settings.trusted_proxies:
            from granian.utils.proxies import wrap_asgi_with_proxy_headers

            app = wrap_asgi_with_proxy_headers(app, list(settings.trusted_proxies))
        run_http(app, settings.host, settings.port)
    except ServerFailed as exc:
        fail(str(exc))


@cli.command()
def worker() -> None:
    """Run a Dramatiq worker for every queue (threads: BPO_WORKER_THREADS)."""
    from bpo.jobs.worker import run_worker

    settings = load_settings()
    database_url, _ = require_services(settings)
    check_database(database_url, settings.db_connect_timeout)
    run_worker(settings)


@cli.command()
def scheduler() -> None:
    """Enqueue periodic jobs (one scheduler at a time holds the lock; others stand by)."""
    from bpo.jobs.scheduler import run_scheduler

    settings = load_settings()
    database_url = settings.database_url
    if database_url is None:
        fail("BPO_DATABASE_URL is not set (bpo up sets it; bpo scheduler needs it)", code=2)
    check_database(database_url, settings.db_connect_timeout)
    run_scheduler(settings)


@cli.command()
def migrate(
    check: Annotated[
        bool, typer.Option("--check", help="Report drift and what would run; change nothing")
    ] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Tenant schemas at once")] = 4,
) -> None:
    """Upgrade the platform schema, then every tenant schema in parallel, to head."""
    from bpo.core.migration_report import print_drift, run_with_progress

    settings = load_settings()
    with database_url_or_embedded(settings) as url:
        check_database(url, settings.db_connect_timeout)
        ok = print_drift(url) if check else run_with_progress(url, concurrency)
        if ok and not check:
            asyncio.run(_register_console(url, settings))
    if not ok:
        raise typer.Exit(1)


async def _register_console(url: str, settings: Settings) -> None:
    """The console's callback at this deployment's public URL (reference data the release
    needs, like its migrations)."""
    from bpo.console.auth import register_callback
    from bpo.core.db import Database

    db = Database(url)
    try:
        async with db.sessionmaker.begin() as session:
            await register_callback(session, settings)
    finally:
        await db.dispose()


@cli.command()
def demo() -> None:
    """Seed the demo provider admin, tenant and client; print their credentials."""
    from bpo.console.session import console_callback
    from bpo.stack import prepare_demo

    settings = load_settings()
    database_url, _ = require_services(settings)
    secret_key = ensure_secret_key(settings)
    creds = asyncio.run(
        prepare_demo(database_url, secret_key, settings.data_dir, console_callback(settings))
    )
    typer.echo(creds.decode())


@cli.command()
def up() -> None:
    """Start everything locally: embedded PostgreSQL and Redis, migrations, demo, API, worker."""
    from bpo.stack import run_stack

    settings = load_settings()
    check_port_free(settings.host, settings.port)
    raise typer.Exit(run_stack(settings))


if __name__ == "__main__":  # pragma: no cover
    main()
