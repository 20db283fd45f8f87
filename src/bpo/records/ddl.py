"""Record keeping's rules, as functions and triggers in each tenant schema.

The service checks first, to answer with a precise problem (`retention-active`,
`legal-hold`); these hold when anything else writes, raw SQL as the tenant's role included
(the role has no TRUNCATE and owns nothing, so it can neither drop nor disable them):

- versions are never deleted, never change and are never added to a disposed document,
  except that their content is marked removed once their document is disposed
  (`records_version_guard`);
- documents are never deleted; a compliance-mode document's retention is never shortened;
  a document is disposed (and its personal fields redacted) only once its retention ended
  and no open hold covers it; disposal is final (`records_document_guard`);
- holds are never deleted; they are released once, and nothing else about them changes;
- a compliance-mode class never weakens (mode, years, what the years count from).

Governance mode yields to `SET LOCAL bpo.records_override = 'governance'` (what a provider
admin's early deletion sets, with a reason, audited): that is the mode's meaning (S3's
`s3:BypassGovernanceRetention`). Compliance mode and holds yield to nobody.
Errors carry SQLSTATEs of class RC, which the service maps to problems.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from bpo.core.models import TENANT_PLACEHOLDER

IMMUTABLE = "RC001"
RETAINED = "RC002"
HELD = "RC003"


def statements(schema: str) -> list[str]:
    """The functions and triggers of one tenant schema (named from the tenant's id)."""
    s = f'"{schema}"'
    return [
        # The open holds whose scope covers a document (listed, or matched by every filter
        # the hold gives).
        f"""
        CREATE FUNCTION {s}.records_holds_on(doc {s}.records_documents)
        RETURNS SETOF {s}.records_holds LANGUAGE sql STABLE AS $$
            SELECT h.* FROM {s}.records_holds h
             WHERE h.released_at IS NULL
               AND (doc.id = ANY (h.document_ids)
                    OR ((h.counterparty IS NOT NULL OR h.class_id IS NOT NULL
                         OR h.date_from IS NOT NULL OR h.date_to IS NOT NULL)
                        AND (h.counterparty IS NULL
                             OR lower(h.counterparty) = lower(doc.counterparty))
                        AND (h.class_id IS NULL OR h.class_id = doc.class_id)
                        AND (h.date_from IS NULL OR doc.document_date >= h.date_from)
                        AND (h.date_to IS NULL OR doc.document_date <= h.date_to)))
        $$
        """,
        f"""
        CREATE FUNCTION {s}.records_document_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            override boolean := coalesce(current_setting('bpo.records_override', true), '')
                                = 'governance' AND OLD.mode = 'governance';
            hold text;
        BEGIN
            IF TG_OP = 'DELETE' THEN
                RAISE EXCEPTION 'documents are never deleted (dispose of them instead)'
                    USING ERRCODE = '{IMMUTABLE}';
            END IF;
            IF OLD.status = 'disposed' AND (NEW.status <> 'disposed'
                    OR NEW.retain_until <> OLD.retain_until) THEN
                RAISE EXCEPTION 'document % was disposed of', OLD.id USING ERRCODE = '{IMMUTABLE}';
            END IF;
            IF NEW.mode <> OLD.mode AND OLD.mode = 'compliance' THEN
                RAISE EXCEPTION 'a compliance-mode document stays in compliance mode'
                    USING ERRCODE = '{RETAINED}';
            END IF;
            IF NEW.retain_until < OLD.retain_until AND NOT override THEN
                RAISE EXCEPTION 'the retention of document % cannot be shortened (until %)',
                    OLD.id, OLD.retain_until
                    USING ERRCODE = '{RETAINED}', DETAIL = OLD.retain_until;
            END IF;
            IF (NEW.status = 'disposed' AND OLD.status <> 'disposed')
               OR (NEW.title, NEW.type, NEW.counterparty, NEW.document_date, NEW.received_on,
                   NEW.class_id, NEW.custom_fields)
                  IS DISTINCT FROM
                  (OLD.title, OLD.type, OLD.counterparty, OLD.document_date, OLD.received_on,
                   OLD.class_id, OLD.custom_fields) THEN
                IF NOT (NEW.status = 'disposed' OR OLD.status = 'pending') THEN
                    RAISE EXCEPTION 'a filed document''s metadata never changes'
                        USING ERRCODE = '{IMMUTABLE}';
                END IF;
                SELECT h.name INTO hold FROM {s}.records_holds_on(OLD) h LIMIT 1;
                IF hold IS NOT NULL THEN
                    RAISE EXCEPTION 'document % is under the legal hold %', OLD.id, hold
                        USING ERRCODE = '{HELD}', DETAIL = hold;
                END IF;
                IF OLD.retain_until >= current_date AND NOT override
                   AND OLD.status <> 'pending' THEN
                    RAISE EXCEPTION 'document % is retained until %', OLD.id, OLD.retain_until
                        USING ERRCODE = '{RETAINED}', DETAIL = OLD.retain_until;
                END IF;
            END IF;
            RETURN NEW;
        END $$
        """,
        f"""
        CREATE FUNCTION {s}.records_version_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                IF EXISTS (SELECT 1 FROM {s}.records_documents d
                            WHERE d.id = NEW.document_id AND d.status = 'disposed') THEN
                    RAISE EXCEPTION 'document % was disposed of', NEW.document_id
                        USING ERRCODE = '{IMMUTABLE}';
                END IF;
                RETURN NEW;
            END IF;
            IF TG_OP = 'DELETE' OR OLD.content_removed_at IS NOT NULL
               OR (NEW.document_id, NEW.number, NEW.sha256, NEW.size, NEW.declared_type,
                   NEW.sniffed_type, NEW.filename, NEW.storage_key, NEW.storage_version,
                   NEW.created_by, NEW.created_at)
                  IS DISTINCT FROM
                  (OLD.document_id, OLD.number, OLD.sha256, OLD.size, OLD.declared_type,
                   OLD.sniffed_type, OLD.filename, OLD.storage_key, OLD.storage_version,
                   OLD.created_by, OLD.created_at) THEN
                RAISE EXCEPTION 'record versions never change and are never deleted'
                    USING ERRCODE = '{IMMUTABLE}';
            END IF;
            IF NOT EXISTS (SELECT 1 FROM {s}.records_documents d
                            WHERE d.id = OLD.document_id AND d.status = 'disposed') THEN
                RAISE EXCEPTION 'the content of a document is removed only once it is disposed of'
                    USING ERRCODE = '{RETAINED}';
            END IF;
            RETURN NEW;
        END $$
        """,
        f"""
        CREATE FUNCTION {s}.records_hold_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' OR OLD.released_at IS NOT NULL OR NEW.released_at IS NULL
               OR (NEW.id, NEW.name, NEW.reason, NEW.document_ids, NEW.counterparty,
                   NEW.class_id, NEW.date_from, NEW.date_to, NEW.placed_by, NEW.placed_at)
                  IS DISTINCT FROM
                  (OLD.id, OLD.name, OLD.reason, OLD.document_ids, OLD.counterparty,
                   OLD.class_id, OLD.date_from, OLD.date_to, OLD.placed_by, OLD.placed_at) THEN
                RAISE EXCEPTION 'a legal hold is only ever released, once' USING ERRCODE = '{HELD}';
            END IF;
            RETURN NEW;
        END $$
        """,
        f"""
        CREATE FUNCTION {s}.records_class_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'UPDATE' AND OLD.mode = 'compliance' AND (
                   NEW.mode <> 'compliance'
                   OR NEW.retention_after <> OLD.retention_after
                   OR NEW.fiscal_year_end <> OLD.fiscal_year_end
                   OR (OLD.retention_years IS NULL AND NEW.retention_years IS NOT NULL)
                   OR NEW.retention_years < OLD.retention_years) THEN
                RAISE EXCEPTION 'a compliance-mode class is only ever extended'
                    USING ERRCODE = '{RETAINED}';
            END IF;
            RETURN NEW;
        END $$
        """,
        # The full-text vector, from the metadata (weight A: title, type, counterparty,
        # tags; B: custom fields) and the extracted text (C).
        f"""
        CREATE FUNCTION {s}.records_search() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' OR (NEW.title, NEW.type, NEW.counterparty, NEW.tags,
                                    NEW.custom_fields, NEW.extracted_text)
                    IS DISTINCT FROM (OLD.title, OLD.type, OLD.counterparty, OLD.tags,
                                      OLD.custom_fields, OLD.extracted_text) THEN
                NEW.search :=
                    setweight(to_tsvector('english', concat_ws(' ', NEW.title, NEW.type,
                        NEW.counterparty, array_to_string(NEW.tags, ' '))), 'A')
                    || setweight(jsonb_to_tsvector('english', NEW.custom_fields,
                        '["string", "numeric"]'), 'B')
                    || setweight(to_tsvector('english', NEW.extracted_text), 'C');
            END IF;
            RETURN NEW;
        END $$
        """,
        f"CREATE TRIGGER search BEFORE INSERT OR UPDATE ON {s}.records_documents"
        f" FOR EACH ROW EXECUTE FUNCTION {s}.records_search()",
        f"CREATE TRIGGER guard BEFORE UPDATE OR DELETE ON {s}.records_documents"
        f" FOR EACH ROW EXECUTE FUNCTION {s}.records_document_guard()",
        f"CREATE TRIGGER guard BEFORE INSERT OR UPDATE OR DELETE ON {s}.records_versions"
        f" FOR EACH ROW EXECUTE FUNCTION {s}.records_version_guard()",
        f"CREATE TRIGGER guard BEFORE UPDATE OR DELETE ON {s}.records_holds"
        f" FOR EACH ROW EXECUTE FUNCTION {s}.records_hold_guard()",
        f"CREATE TRIGGER guard BEFORE UPDATE ON {s}.records_classes"
        f" FOR EACH ROW EXECUTE FUNCTION {s}.records_class_guard()",
    ]


def create_after_tables(_: Any, connection: Connection, **__: Any) -> None:
    """metadata `after_create`: the tenant schema being built is the placeholder's route."""
    routes = connection.get_execution_options().get("schema_translate_map") or {}
    schema = routes.get(TENANT_PLACEHOLDER)
    if schema is None:
        return
    for statement in statements(schema):
        connection.exec_driver_sql(statement)
