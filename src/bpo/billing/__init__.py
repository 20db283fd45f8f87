"""Usage-based billing: meters, the usage ledger and its hourly rollups (Stripe to follow)."""
