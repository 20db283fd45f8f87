"""The ledger's invariants, as functions and triggers in each tenant schema.

The service checks everything first, to answer with a precise problem; these hold when
anything else writes (raw SQL as the tenant's role included):

- posted entries and their lines never change or disappear (`ledger_immutable`);
- at the end of each statement that posts (`ledger_entries_posted`, statement-level over the
  statement's new rows): each posted entry is booked at its transaction's time, is not on
  or before the lock date nor in a closed period (a shared advisory lock per firm, so a
  lock-date or period change waits for postings in flight, and they for it), has lines,
  and balances per currency and in functional currency;
- lines join only an entry posted by the same statement's transaction
  (`ledger_lines_join`);
- balance conditions hold on every change of an account's maintained balance
  (`ledger_condition`, row-level, AFTER the upsert).

Errors carry SQLSTATEs of our own (class LD), which the service maps to problems.
The functions name their schema's tables in full: no search_path is trusted.
"""

from __future__ import annotations

import zlib
from typing import Any

from sqlalchemy import Connection

from bpo.core.models import TENANT_PLACEHOLDER

IMMUTABLE = "LD001"
LOCKED = "LD002"
UNBALANCED = "LD003"
CONDITION = "LD004"
LINE_JOIN = "LD005"
BOOKED = "LD006"


FUNCTIONS = (
    "ledger_immutable",
    "ledger_entries_posted",
    "ledger_lines_join",
    "ledger_condition",
)


def lock_key(schema: str) -> int:
    """The advisory lock key of a firm's lock date and periods (postings share it)."""
    return 0x6C656467 << 32 | zlib.crc32(schema.encode())  # "ledg" + the schema


def statements(schema: str) -> list[str]:
    """The functions and triggers of one tenant schema (its name is derived from the
    tenant's id, never from user text)."""
    s = f'"{schema}"'
    key = lock_key(schema)
    return [
        f"""
        CREATE FUNCTION {s}.ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_TABLE_NAME = 'ledger_lines' THEN
                RAISE EXCEPTION 'posted lines cannot be changed or deleted'
                    USING ERRCODE = '{IMMUTABLE}';
            END IF;
            IF OLD.status = 'posted' THEN
                RAISE EXCEPTION 'entry % is posted: it cannot be changed or deleted (reverse it)',
                    OLD.number USING ERRCODE = '{IMMUTABLE}';
            END IF;
            IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
            RETURN NEW;
        END $$
        """,
        f"""
        CREATE FUNCTION {s}.ledger_entries_posted() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            locked date;
            bad record;
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM posted WHERE status = 'posted') THEN RETURN NULL; END IF;
            IF EXISTS (SELECT 1 FROM posted WHERE status = 'posted' AND booked_at <> now()) THEN
                RAISE EXCEPTION 'a posting is booked at the time of its own transaction'
                    USING ERRCODE = '{BOOKED}';
            END IF;
            PERFORM pg_advisory_xact_lock_shared({key});
            SELECT lock_date INTO locked FROM {s}.ledger_settings WHERE id = 1;
            SELECT number INTO bad FROM posted
             WHERE status = 'posted' AND effective_on <= locked LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'the books are locked up to %', locked
                    USING ERRCODE = '{LOCKED}', DETAIL = locked::text;
            END IF;
            SELECT to_char(p.effective_on, 'YYYY-MM') AS period INTO bad
              FROM posted p JOIN {s}.ledger_periods c
                ON c.starts_on = date_trunc('month', p.effective_on)::date AND c.status = 'closed'
             WHERE p.status = 'posted' LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'the period % is closed', bad.period
                    USING ERRCODE = '{LOCKED}', DETAIL = bad.period;
            END IF;
            SELECT number INTO bad FROM posted p WHERE p.status = 'posted'
               AND NOT EXISTS (SELECT 1 FROM {s}.ledger_lines l WHERE l.entry_id = p.id) LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'posted entry % has no lines', bad.number
                    USING ERRCODE = '{UNBALANCED}';
            END IF;
            SELECT p.number, l.currency INTO bad
              FROM posted p JOIN {s}.ledger_lines l ON l.entry_id = p.id
             WHERE p.status = 'posted'
             GROUP BY p.number, l.currency HAVING sum(l.amount) <> 0 LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'entry % does not balance in %', bad.number, bad.currency
                    USING ERRCODE = '{UNBALANCED}', DETAIL = bad.currency;
            END IF;
            SELECT p.number INTO bad
              FROM posted p JOIN {s}.ledger_lines l ON l.entry_id = p.id
             WHERE p.status = 'posted'
             GROUP BY p.number HAVING sum(l.functional_amount) <> 0 LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'entry % does not balance in the functional currency', bad.number
                    USING ERRCODE = '{UNBALANCED}';
            END IF;
            RETURN NULL;
        END $$
        """,
        f"""
        CREATE FUNCTION {s}.ledger_lines_join() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM added a WHERE NOT EXISTS (
                         SELECT 1 FROM {s}.ledger_entries e
                          WHERE e.id = a.entry_id AND e.status = 'posted'
                            AND e.booked_at = now() AND e.effective_on = a.effective_on)) THEN
                RAISE EXCEPTION 'lines are written only with the posting of their entry'
                    USING ERRCODE = '{LINE_JOIN}';
            END IF;
            RETURN NULL;
        END $$
        """,
        f"""
        CREATE FUNCTION {s}.ledger_condition() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            acct record;
            bal bigint;
        BEGIN
            SELECT code, type, min_balance, max_balance INTO acct
              FROM {s}.ledger_accounts WHERE id = NEW.account_id;
            IF acct.min_balance IS NULL AND acct.max_balance IS NULL THEN RETURN NEW; END IF;
            bal := CASE WHEN acct.type IN ('asset', 'expense')
                            THEN NEW.debit - NEW.credit ELSE NEW.credit - NEW.debit END;
            IF bal < acct.min_balance THEN
                RAISE EXCEPTION 'account % would go below its minimum balance of % %',
                    acct.code, acct.min_balance, NEW.currency
                    USING ERRCODE = '{CONDITION}', DETAIL = acct.code;
            END IF;
            IF bal > acct.max_balance THEN
                RAISE EXCEPTION 'account % would go above its maximum balance of % %',
                    acct.code, acct.max_balance, NEW.currency
                    USING ERRCODE = '{CONDITION}', DETAIL = acct.code;
            END IF;
            RETURN NEW;
        END $$
        """,
        f"CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON {s}.ledger_entries"
        f" FOR EACH ROW EXECUTE FUNCTION {s}.ledger_immutable()",
        f"CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON {s}.ledger_lines"
        f" FOR EACH ROW EXECUTE FUNCTION {s}.ledger_immutable()",
        # Statement-level, over the statement's new rows: a batch of 1,000 entries is checked
        # in a few queries, at the end of the statement that writes the entries with their
        # lines (the posting writes both in one; SQL that writes them apart is refused).
        f"CREATE TRIGGER posted AFTER INSERT ON {s}.ledger_entries REFERENCING NEW TABLE AS"
        f" posted FOR EACH STATEMENT EXECUTE FUNCTION {s}.ledger_entries_posted()",
        f"CREATE TRIGGER drafts_posted AFTER UPDATE ON {s}.ledger_entries REFERENCING NEW TABLE"
        f" AS posted FOR EACH STATEMENT EXECUTE FUNCTION {s}.ledger_entries_posted()",
        f"CREATE TRIGGER joins AFTER INSERT ON {s}.ledger_lines REFERENCING NEW TABLE AS added"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {s}.ledger_lines_join()",
        # AFTER, not BEFORE: an upsert's BEFORE INSERT trigger sees the proposed row (this
        # posting's turnover alone), not the balance the row ends with.
        f"CREATE TRIGGER condition AFTER INSERT OR UPDATE ON {s}.ledger_totals"
        f" FOR EACH ROW EXECUTE FUNCTION {s}.ledger_condition()",
    ]


def create_after_tables(_: Any, connection: Connection, **__: Any) -> None:
    """metadata `after_create`: the tenant schema being built is the placeholder's route."""
    routes = connection.get_execution_options().get("schema_translate_map") or {}
    schema = routes.get(TENANT_PLACEHOLDER)
    if schema is None:  # a plain create_all (not a tenant schema): nothing to guard
        return
    for statement in statements(schema):
        connection.exec_driver_sql(statement)
