"""The guard's answer about a caller's standing, kept a short while: no round trip per request.

The guard asks the database, in one statement, whether the token was revoked, whether its
client or user (and membership, or staff assignment) still stands, and the caller's role in
the tenant asked for. That answer is cached per (token, tenant) for `TTL_S` at most, and
every cache is emptied whenever access changes:
- in the process that changed it, at the commit itself (an engine event notices writes to
  the access tables, on any connection of the process);
- in every other process when the database's NOTIFY arrives: a trigger on each access table
  announces every committing change on `bpo_access` (delivered at commit; under a
  millisecond on one host);
- while a process's listener is not connected, its cache is not used at all (every request
  asks the database), and it starts empty when the listener connects again.
A read that raced a change (began before, answered after it) is not cached: each read
notes the cache's generation and is kept only if no clear happened meanwhile.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from bpo.core.notifications import Listener

ACCESS_CHANNEL = "bpo_access"
ACCESS_TABLES = (
    "users",
    "api_clients",
    "memberships",
    "staff_assignments",
    "tenants",
    "revoked_tokens",
)
TTL_S = 30.0
_WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCA")
_NAMES = tuple(f"platform.{table}" for table in ACCESS_TABLES)


class StandingCache:
    def __init__(self, ttl_s: float = TTL_S, size: int = 8192) -> None:
        self.ttl_s, self.size = ttl_s, size
        self.generation = 0
        self.listener: Listener | None = None
        self._rows: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        _CACHES.add(self)

    def listen(self, url: str) -> Listener:
        """Follow `bpo_access` on a connection of its own (start it in the server's loop)."""
        self.listener = Listener(url, ACCESS_CHANNEL, lambda _: self.clear(), self.clear)
        return self.listener

    @property
    def usable(self) -> bool:
        return self.listener is not None and self.listener.connected

    def get(self, key: Hashable) -> Any | None:
        if not self.usable:
            return None
        hit = self._rows.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: Hashable, row: Any, generation: int) -> None:
        """Keep `row`, read when the generation was `generation`, unless a change came since."""
        if not self.usable or generation != self.generation:
            return
        self._rows[key] = (time.monotonic() + self.ttl_s, row)
        if len(self._rows) > self.size:
            self._rows.popitem(last=False)

    def clear(self) -> None:
        self.generation += 1
        self._rows.clear()


_CACHES: weakref.WeakSet[StandingCache] = weakref.WeakSet()


def clear_all() -> None:
    for cache in list(_CACHES):
        cache.clear()


@event.listens_for(Engine, "after_cursor_execute")
def _note_access_write(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    head = statement.lstrip()[:6].upper()
    if head in _WRITES and any(name in statement for name in _NAMES):
        conn.info["bpo_access_changed"] = True


@event.listens_for(Engine, "commit")
def _clear_at_commit(conn: Any) -> None:
    if conn.info.pop("bpo_access_changed", False):
        clear_all()


@event.listens_for(Engine, "rollback")
def _forget_on_rollback(conn: Any) -> None:
    conn.info.pop("bpo_access_changed", None)
