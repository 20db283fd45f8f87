"""The audit trail: every state change, chained per tenant so tampering shows."""

from bpo.audit.service import record

__all__ = ["record"]
