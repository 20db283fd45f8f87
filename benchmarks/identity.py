"""Identity figures (the OAuth slice), printed.

1. Client-credentials tokens per second on one `bpo serve` process (Granian, one process),
   with p50/p99 latency (goal >= 1,500 tokens/s). N keep-alive connections each POST
   `grant_type=client_credentials` with HTTP Basic to /oauth/token for D seconds after a
   warm-up, cycling through 50 API clients. A 200 is an ES256-signed token whose
   `platform.token_events` row was committed before the answer. The rate limits are raised
   out of the way (each request is still counted in Redis, per client and per address).
   Concurrent requests share their round trips (bpo.core.coalesce). For scale, the same load
   generator against a server that only returns canned responses (the client's own ceiling
   here), and GET /health/live on the same `bpo serve` (the HTTP stack's ceiling).
2. Authenticated read cost (goal <= 1.15): one tenant-scoped read (a primary-key select
   through the `tenant_db` dependency) mounted on one served app (create_app +
   extra_route_handlers, served as `bpo serve` serves it) three ways:
   A. behind `requires("work:read")`, called with a bearer token (verification, cached per
      process, then the guard's one access statement);
   B. unauthenticated, the tenant found by slug in one platform query on an autocommit
      connection (the way the guard runs its statement), then `issue_tenant_context`;
   C. unauthenticated, the tenant found exactly as `tenant_context` did before authentication
      existed (a session: BEGIN, the same query, ROLLBACK).
   Rounds are interleaved A/B/C, A/B/C, ...; each round gives A's time per request over B's
   (and C's) under the same load, and the figure is the median of those ratios. Server CPU
   per request is printed too.

The load generator is a small keep-alive HTTP/1.1 client on asyncio (uvloop when installed)
in this process. The machine's cores (2 here) are shared by the client, the server,
PostgreSQL and Redis: the CPU each used during a run is printed with the figures, read from
/proc. Logs at WARNING (no access log), as benchmarks/health.py runs.

Each figure also runs alone: benchmarks/tokens.py (1) and benchmarks/reads.py (2), with the
load generator and CPU watch in benchmarks/_load.py and the shared setup in _identity.py.

Usage: python benchmarks/identity.py [--seconds 10] [--trials 3] [--connections 16] [--rounds 12]
       [--round-seconds 2] [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
       [--broker-url redis://127.0.0.1:6379/0] [--only tokens|reads] [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _identity, reads, tokens

if __name__ == "__main__":
    _identity.main(__doc__, {"tokens": tokens.figure, "reads": reads.figure})
