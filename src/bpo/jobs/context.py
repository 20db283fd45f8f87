"""What actors need from their process: settings and a database, made once per worker."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread

from bpo.core.db import Database, DatabaseOptions
from bpo.core.tenancy import recycle_after_tenants
from bpo.settings import Settings

_settings: Settings | None = None
_database: Database | None = None


class WorkerContext(dramatiq.Middleware):
    """Gives actors this worker's settings; disposes the engine when the worker stops."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        global _settings
        _settings = self.settings

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        global _database
        loop_thread = get_event_loop_thread()
        if _database is not None and loop_thread is not None:
            loop_thread.run_coroutine(_database.dispose())
        _database = None


def worker_settings() -> Settings:
    if _settings is None:
        raise RuntimeError("no worker is running in this process")
    return _settings


def worker_database() -> Database:
    """The worker's engine, created on first use inside the worker's event loop."""
    global _database
    if _database is None:
        if _settings is None or _settings.database_url is None:
            raise RuntimeError("the worker has no database configured (BPO_DATABASE_URL)")
        _database = Database(
            _settings.database_url,
            DatabaseOptions(
                pool_size=max(2, _settings.worker_threads),
                max_overflow=0,
                connect_timeout=_settings.db_connect_timeout,
                statement_timeout_ms=_settings.api_statement_timeout_ms * 4,
                application_name="bpo-worker",
            ),
        )
        recycle_after_tenants(_database.engine, _settings.tenants_per_connection)
    return _database
