"""The audit trail: every state change, chained per tenant so tampering shows."""

from bpo.audit.service import actor_of, record

__all__ = ["actor_of", "record"]
