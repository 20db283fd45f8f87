"""Provider-level data in the shared `platform` schema: tenants, identity, clients, billing."""
