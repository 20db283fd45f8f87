"""Citus (12+) schema-based sharding: every tenant schema a distributed schema on one node.

A distributed schema keeps all its tables on one node, so a tenant's transaction runs on
one machine as it does on plain PostgreSQL; the rebalancer and `citus_schema_move` move
whole tenants. What the application does for it:
- a tenant schema is distributed where it is built (`distribute_schema`), warm-pool
  schemas included, so signups claim schemas already placed;
- the platform tables that tenant transactions only read become reference tables (a copy
  on every node, `ensure_reference_tables`), so a tenant's statement finds them locally.
  A domain marks such a table `__table_args__ = {"info": {TENANT_READS: True}}`; core reads
  the mark from the metadata and knows no domain.

On plain PostgreSQL each function is a no-op after one catalog check per database
connection (its answer is kept with the pooled connection): no query per request.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bpo.core.models import PlatformBase, require_all_models

TENANT_READS = "tenant_reads"  # the `Table.info` mark of a platform table tenants read
_CACHE_KEY = "bpo_is_citus"
_HAS_CITUS = text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
_DISTRIBUTE = text("SELECT citus_schema_distribute(CAST(CAST(:schema AS text) AS regnamespace))")
# Reference tables are pg_dist_partition rows without a shard key ('n') replicated by
# two-phase commit ('t'); single-shard and Citus-local tables are 'n' with 's'.
_NOT_YET_REFERENCE = text(
    """
    SELECT t FROM unnest(CAST(:tables AS text[])) WITH ORDINALITY AS u(t, i)
    WHERE NOT EXISTS (
        SELECT 1 FROM pg_dist_partition p
        WHERE p.logicalrelid = to_regclass(u.t) AND p.partmethod = 'n' AND p.repmodel = 't'
    )
    ORDER BY i
    """
)
_MAKE_REFERENCE = text("SELECT create_reference_table(CAST(CAST(:table AS text) AS regclass))")


def is_citus_sync(conn: Connection) -> bool:
    """Whether the `citus` extension is installed in this database (checked once per
    pooled connection: `Connection.info` lives as long as the database connection)."""
    cached = conn.info.get(_CACHE_KEY)
    if cached is None:
        cached = bool(conn.execute(_HAS_CITUS).scalar())
        conn.info[_CACHE_KEY] = cached
    return bool(cached)


async def is_citus(conn: AsyncConnection) -> bool:
    return await conn.run_sync(is_citus_sync)


def distribute_schema(conn: Connection, schema: str) -> bool:
    """Make `schema` a distributed schema (its tables single-shard, on one node), in the
    caller's transaction. Tables created in it later are distributed by Citus itself.
    Returns whether it was distributed (False: not Citus, nothing done)."""
    if not is_citus_sync(conn):
        return False
    conn.execute(_DISTRIBUTE, {"schema": schema})
    return True


def tenant_read_tables() -> list[str]:
    """The platform tables marked TENANT_READS, referenced tables first (Citus refuses a
    reference table whose foreign key points at a table that is not one yet)."""
    require_all_models()
    return [t.fullname for t in PlatformBase.metadata.sorted_tables if t.info.get(TENANT_READS)]


def ensure_reference_tables(conn: Connection, tables: Sequence[str]) -> list[str]:
    """Turn each of `tables` (schema-qualified) into a reference table unless it is one.
    Idempotent; returns the tables converted now (none when not on Citus)."""
    if not tables or not is_citus_sync(conn):
        return []
    missing = list(conn.execute(_NOT_YET_REFERENCE, {"tables": list(tables)}).scalars())
    for table in missing:
        conn.execute(_MAKE_REFERENCE, {"table": table})
    return missing
