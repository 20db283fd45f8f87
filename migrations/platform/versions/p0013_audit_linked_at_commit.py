"""audit: events are linked into their chain at commit (a deferred trigger), not on insert

Revision ID: p0013
Revises: p0012
Create Date: 2026-12-04 19:00:00.000000

Before, an append locked its chain's head row at once and held it to the commit, with every
round trip the transaction still made: the tenant's one serialising point (a hot queue's
claims waited on it). Now an append is a plain insert carrying the canonical bytes around
its sequence number; a deferred constraint trigger locks the head at COMMIT, numbers and
hashes the event (the same formula), and moves the head. The lock is held only while the
commit completes, inside PostgreSQL. Tenant roles no longer touch the heads at all.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "p0013"
down_revision: str | None = "p0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("link_before", sa.Text()), schema="platform")
    op.add_column("audit_events", sa.Column("link_after", sa.Text()), schema="platform")
    op.drop_constraint("pk_audit_events", "audit_events", schema="platform", type_="primary")
    for column in ("seq", "prev_hash", "hash"):
        op.alter_column("audit_events", column, nullable=True, schema="platform")
    op.drop_constraint("uq_audit_events_id", "audit_events", schema="platform", type_="unique")
    op.create_primary_key("pk_audit_events", "audit_events", ["id"], schema="platform")
    op.create_unique_constraint(
        "uq_audit_events_chain_id_seq", "audit_events", ["chain_id", "seq"], schema="platform"
    )
    op.execute(
        """
        CREATE FUNCTION platform.link_audit_event() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp
        AS $$
        DECLARE
            head record;
            linked bytea;
        BEGIN
            INSERT INTO platform.audit_heads (chain_id, seq, hash)
                VALUES (NEW.chain_id, 0, decode(repeat('00', 32), 'hex'))
                ON CONFLICT (chain_id) DO NOTHING;
            SELECT seq, hash INTO head FROM platform.audit_heads
             WHERE chain_id = NEW.chain_id FOR UPDATE;
            linked := sha256(convert_to(NEW.link_before || (head.seq + 1)::text
                                        || NEW.link_after || encode(head.hash, 'hex') || '"]',
                                        'UTF8'));
            UPDATE platform.audit_heads SET seq = head.seq + 1, hash = linked
             WHERE chain_id = NEW.chain_id;
            UPDATE platform.audit_events
               SET seq = head.seq + 1, prev_hash = head.hash, hash = linked,
                   link_before = NULL, link_after = NULL
             WHERE id = NEW.id;
            RETURN NULL;
        END $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION platform.link_audit_event() FROM PUBLIC")
    op.execute(
        "CREATE CONSTRAINT TRIGGER link_at_commit AFTER INSERT ON platform.audit_events"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION platform.link_audit_event()"
    )
    # Tenant roles append events (their own chain, as before); the heads are the trigger's.
    op.execute("DROP POLICY own_tenant_head ON platform.audit_heads")
    op.execute("REVOKE ALL ON platform.audit_heads FROM bpo_tenants")


def downgrade() -> None:
    op.execute("GRANT SELECT, INSERT, UPDATE ON platform.audit_heads TO bpo_tenants")
    op.execute(
        "CREATE POLICY own_tenant_head ON platform.audit_heads FOR ALL TO bpo_tenants"
        " USING (platform.tenant_role(chain_id) = current_user)"
        " WITH CHECK (platform.tenant_role(chain_id) = current_user)"
    )
    op.execute("DROP TRIGGER link_at_commit ON platform.audit_events")
    op.execute("DROP FUNCTION platform.link_audit_event()")
    op.drop_constraint(
        "uq_audit_events_chain_id_seq", "audit_events", schema="platform", type_="unique"
    )
    op.drop_constraint("pk_audit_events", "audit_events", schema="platform", type_="primary")
    op.create_unique_constraint("uq_audit_events_id", "audit_events", ["id"], schema="platform")
    for column in ("seq", "prev_hash", "hash"):
        op.alter_column("audit_events", column, nullable=False, schema="platform")
    op.create_primary_key("pk_audit_events", "audit_events", ["chain_id", "seq"], schema="platform")
    op.drop_column("audit_events", "link_after", schema="platform")
    op.drop_column("audit_events", "link_before", schema="platform")
