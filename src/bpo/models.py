"""Every domain's tables, assembled: the one module above the domains that knows them all.

The metadata of `platform` and of a tenant schema is complete only once each domain's
models are imported. The entry points call `load_all_models()` (the app, the CLI, the
worker, both migration environments and the tests); `core` only checks it was done.
"""

from __future__ import annotations

from bpo.core.models import mark_all_models_loaded


def load_all_models() -> None:
    import bpo.audit.models
    import bpo.billing.models
    import bpo.compliance.models
    import bpo.core.idempotency
    import bpo.identity.models
    import bpo.jobs.models
    import bpo.ledger.models
    import bpo.people.models
    import bpo.platform.models
    import bpo.records.models
    import bpo.settlements.models
    import bpo.webhooks.models
    import bpo.work.models  # noqa: F401

    mark_all_models_loaded()
