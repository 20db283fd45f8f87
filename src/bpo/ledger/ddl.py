"""The ledger's invariants, as functions and triggers in each tenant schema.

The service checks everything first, to answer with a precise problem; these hold when
anything else writes (raw SQL as the tenant's role included):

- posted entries and their lines never change or disappear (`ledger_immutable`);
- lines join only an entry being posted in the same transaction (`ledger_line_joins`);
- a posted entry has lines that balance per currency and in functional currency
  (`ledger_entry_balances`);
  both constraint triggers, checked at the end of the statement, or at commit where the
  writer deferred them;
- nothing posts on or before the lock date or into a closed period (`ledger_entry_posts`,
  which also stamps the booking time; a shared advisory lock per firm, so a lock-date or
  period change waits for postings in flight, and they for it);
- balance conditions hold on every change of an account's maintained balance
  (`ledger_condition`).

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


FUNCTIONS = (
    "ledger_immutable",
    "ledger_entry_posts",
    "ledger_entry_balances",
    "ledger_line_joins",
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
        CREATE FUNCTION {s}.ledger_entry_posts() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            locked date;
        BEGIN
            IF NEW.status <> 'posted' THEN RETURN NEW; END IF;
            NEW.booked_at := now();
            PERFORM pg_advisory_xact_lock_shared({key});
            SELECT lock_date INTO locked FROM {s}.ledger_settings WHERE id = 1;
            IF locked IS NOT NULL AND NEW.effective_on <= locked THEN
                RAISE EXCEPTION 'the books are locked up to %', locked
                    USING ERRCODE = '{LOCKED}', DETAIL = locked::text;
            END IF;
            IF EXISTS (SELECT 1 FROM {s}.ledger_periods
                        WHERE starts_on = date_trunc('month', NEW.effective_on)::date
                          AND status = 'closed') THEN
                RAISE EXCEPTION 'the period % is closed', to_char(NEW.effective_on, 'YYYY-MM')
                    USING ERRCODE = '{LOCKED}', DETAIL = to_char(NEW.effective_on, 'YYYY-MM');
            END IF;
            RETURN NEW;
        END $$
        """,
        f"""
        CREATE FUNCTION {s}.ledger_entry_balances() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            n_lines bigint;
            functional numeric;
            off text;
        BEGIN
            SELECT count(*), coalesce(sum(functional_amount), 0) INTO n_lines, functional
              FROM {s}.ledger_lines WHERE entry_id = NEW.id;
            IF n_lines = 0 THEN
                RAISE EXCEPTION 'posted entry % has no lines', NEW.number
                    USING ERRCODE = '{UNBALANCED}';
            END IF;
            SELECT currency INTO off FROM {s}.ledger_lines WHERE entry_id = NEW.id
             GROUP BY currency HAVING sum(amount) <> 0 LIMIT 1;
            IF off IS NOT NULL THEN
                RAISE EXCEPTION 'entry % does not balance in %', NEW.number, off
                    USING ERRCODE = '{UNBALANCED}', DETAIL = off;
            END IF;
            IF functional <> 0 THEN
                RAISE EXCEPTION 'entry % does not balance in the functional currency', NEW.number
                    USING ERRCODE = '{UNBALANCED}';
            END IF;
            RETURN NULL;
        END $$
        """,
        f"""
        CREATE FUNCTION {s}.ledger_line_joins() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM {s}.ledger_entries
                            WHERE id = NEW.entry_id AND status = 'posted'
                              AND booked_at = now() AND effective_on = NEW.effective_on) THEN
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
        f"CREATE TRIGGER posts BEFORE INSERT OR UPDATE ON {s}.ledger_entries"
        f" FOR EACH ROW EXECUTE FUNCTION {s}.ledger_entry_posts()",
        # Constraint triggers checked at the end of each statement (the posting writes an
        # entry and its lines in one); SQL that writes them apart may defer the checks to
        # its commit (SET CONSTRAINTS ... DEFERRED), never skip them.
        f"CREATE CONSTRAINT TRIGGER balances AFTER INSERT OR UPDATE ON {s}.ledger_entries"
        f" DEFERRABLE INITIALLY IMMEDIATE FOR EACH ROW WHEN (NEW.status = 'posted')"
        f" EXECUTE FUNCTION {s}.ledger_entry_balances()",
        f"CREATE CONSTRAINT TRIGGER joins AFTER INSERT ON {s}.ledger_lines"
        f" DEFERRABLE INITIALLY IMMEDIATE FOR EACH ROW EXECUTE FUNCTION {s}.ledger_line_joins()",
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
