"""The console's figures (issue 26), printed.

1. Inbox: a staff member assigned to T firms (default 200) of T+O (default 50 more), which
   hold N open tasks (default 100,000), signed in to a real `bpo serve` through the
   console's own OAuth flow. R times each (default 200), one after another from a client on
   loopback: GET /console/inbox (the page), the same filtered by firm and by SLA, the
   fragment htmx refreshes every 10 s, and, as the baseline in the same run, the API call
   the page makes (GET /v1/staff/inbox, bearer token). For each: time to first byte and
   full load p50/p95 as the client sees them, and p95 of the server's own time (the access
   log's duration of that request). "Full load" of the page is the HTML plus its
   stylesheet and htmx with a cold cache (every run fetches them again).
2. Bytes per page: HTML, stylesheet and htmx of each console page, uncompressed and as
   sent (bpo gzips the console's pages and static files when the browser accepts it).

Usage: python benchmarks/console.py [--tenants 200] [--others 50] [--open 100000]
                                    [--requests 200] [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from benchmarks import _cli
from benchmarks._services import services
from benchmarks.work import analyze, new_tenant, pct
from tests.support.bulk_work import seed_open_tasks
from tests.support.processes import bpo_env, free_port, wait_http
from tests.support.work import service_in

from bpo.core.db import Database
from bpo.core.security import hash_password
from bpo.core.tenancy import tenant_session
from bpo.identity.models import OAuthApp, StaffAssignment, User
from bpo.identity.scopes import USER_SCOPES
from bpo.work.catalog import create_service
from bpo.work.models import StaffProfile

PASSWORD = "bench-console-password"
SECRET_KEY = "bench-console-secret-key-0123456789abcdef"
ASSETS = re.compile(r'(?:href|src)="(/static/[^"]+)"')


async def seed(url: str, base: str, args: object) -> tuple[str, str]:
    """Firms, open tasks, the console app; a staff member and a staff admin (emails)."""
    db = Database(url)
    try:
        tenants = [await new_tenant(db, f"firm-{n:04d}") for n in range(args.tenants + args.others)]
        async with db.sessionmaker.begin() as session:
            await create_service(session, service_in())
            session.add(OAuthApp(client_id="demo-console", name="Console",
                                 redirect_uris=[f"{base}/console/callback"], secret_digest=None,
                                 scopes=sorted(USER_SCOPES)))  # fmt: skip
        per_tenant = args.open // len(tenants)
        for n, tenant in enumerate(tenants):
            async with tenant_session(db.engine, tenant) as session:
                await seed_open_tasks(session, tenant.tenant_id, per_tenant, seed=n)
        await analyze(db, tenants)
        digest = hash_password(PASSWORD)
        staff, admin = "staff@bench.example", "admin@bench.example"
        async with db.sessionmaker.begin() as session:
            user = User(email=staff, password_hash=digest, staff_role="staff")
            session.add_all([user, User(email=admin, password_hash=digest,
                                        staff_role="staff_admin")])  # fmt: skip
            await session.flush()
            session.add(StaffProfile(user_id=user.id, skills=["accounting"], capacity=1000))
            session.add_all(StaffAssignment(user_id=user.id, tenant_id=t.tenant_id)
                            for t in tenants[: args.tenants])  # fmt: skip
        print(f"{len(tenants)} firms, {per_tenant * len(tenants):,} open tasks; the staff "
              f"member is assigned to {args.tenants}")  # fmt: skip
        return staff, admin
    finally:
        await db.dispose()


def sign_in(http: httpx.Client, email: str) -> str:
    """The console's sign-in, as a browser follows it; returns the session's access token
    (read from the token endpoint's answer is not possible: the console keeps it sealed,
    so the baseline signs in through the same flow and then asks for a token of its own)."""
    login = http.get("/console/login", follow_redirects=True)
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', login.text))
    answer = http.post("/oauth/authorize", data=hidden | {"email": email, "password": PASSWORD})
    assert answer.status_code == 302, answer.text[:300]
    back = http.get(answer.headers["location"])
    assert back.status_code == 303 and http.cookies.get("bpo_console"), back.text[:300]
    return str(back.headers["location"])


def api_token(base: str, email: str) -> str:
    """A bearer token for the same person, through the code flow with PKCE (the baseline)."""
    verifier = secrets.token_urlsafe(48)
    params = {"response_type": "code", "client_id": "demo-console",
              "redirect_uri": f"{base}/console/callback", "state": "bench",
              "code_challenge": create_s256_code_challenge(verifier),
              "code_challenge_method": "S256"}  # fmt: skip
    with httpx.Client(base_url=base) as http:
        page = http.get("/oauth/authorize", params=params)
        hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        answer = http.post("/oauth/authorize", data=hidden | {"email": email, "password": PASSWORD})
        code = dict(httpx.URL(answer.headers["location"]).params)["code"]
        token = http.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "client_id": "demo-console",
            "redirect_uri": f"{base}/console/callback", "code_verifier": verifier})  # fmt: skip
        return str(token.json()["access_token"])


def timed(http: httpx.Client, path: str, **kwargs: object) -> tuple[float, float, bytes, str]:
    """(first byte, full body) in seconds, the body, and the request id of one GET."""
    began = time.perf_counter()
    with http.stream("GET", path, **kwargs) as answer:  # type: ignore[arg-type]
        first = time.perf_counter() - began
        body = answer.read()
        assert answer.status_code == 200, (path, answer.status_code, body[:300])
        return first, time.perf_counter() - began, body, answer.headers.get("x-request-id", "")


def server_ms(log: Path, request_ids: set[str]) -> list[float]:
    found = []
    for line in log.read_text().splitlines():
        if '"request"' in line and any(rid in line for rid in request_ids):
            found.append(float(json.loads(line)["duration_ms"]))
    return found


def measure(http: httpx.Client, log: Path, label: str, path: str, n: int,
            full: bool = False, **kwargs: object) -> float:  # fmt: skip
    firsts, totals, ids = [], [], set()
    for _ in range(n):
        first, total, body, rid = timed(http, path, **kwargs)
        if full:  # the page's stylesheet and htmx, fetched again (a cold cache)
            for asset in ASSETS.findall(body.decode()):
                total += timed(http, asset.replace("&amp;", "&"))[1]
        firsts.append(first)
        totals.append(total)
        ids.add(rid)
    time.sleep(0.3)  # the access log lines are written
    server = server_ms(log, ids)
    server_p95 = pct(server, 0.95) if server else float("nan")
    print(f"  {label:<34} first byte p50 {pct(firsts, .5) * 1e3:6.1f} p95 "
          f"{pct(firsts, .95) * 1e3:6.1f} ms | full p50 {pct(totals, .5) * 1e3:6.1f} p95 "
          f"{pct(totals, .95) * 1e3:6.1f} ms | server p95 {server_p95:6.1f} ms")  # fmt: skip
    return pct(firsts, 0.95)


def page_bytes(http: httpx.Client, path: str) -> tuple[int, int, int]:
    """(HTML bytes, with its static files, the same as sent: gzip, which bpo applies to
    the console's pages and static files when the browser accepts it) of one page."""
    answer = http.get(path, headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    parts = [answer] + [http.get(a.replace("&amp;", "&"), headers={"Accept-Encoding": "gzip"})
                        for a in ASSETS.findall(answer.text)]  # fmt: skip
    raw = sum(len(p.content) for p in parts)
    return len(answer.content), raw, sum(p.num_bytes_downloaded for p in parts)


def run(url: str, broker: str, args: object) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    staff, admin = asyncio.run(seed(url, base, args))
    log = Path(tempfile.mkdtemp(prefix="bpo-console-bench-")) / "serve.log"
    env = bpo_env(BPO_DATABASE_URL=url, BPO_BROKER_URL=broker, BPO_PORT=str(port),
                  BPO_SECRET_KEY=SECRET_KEY, BPO_LOG_LEVEL="INFO",
                  BPO_BROKER_NAMESPACE=f"bench-{uuid.uuid4().hex[:8]}")  # fmt: skip
    with log.open("w") as sink:
        server = subprocess.Popen([sys.executable, "-m", "bpo", "serve"], env=env,
                                  stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_http(f"{base}/health/ready", 60, server)
        with httpx.Client(base_url=base, timeout=30) as http:
            sign_in(http, staff)
            token = api_token(base, staff)
            n = args.requests
            print(f"inbox of a staff member, {n} requests each (client on loopback):")
            measure(http, log, "GET /console/inbox (page)", "/console/inbox", n, full=True)
            bearer = {"Authorization": f"Bearer {token}"}
            api = measure(http, log, "GET /v1/staff/inbox (API baseline)", "/v1/staff/inbox", n,
                          headers=bearer, params={"limit": 50})  # fmt: skip
            page = measure(http, log, "GET /console/inbox (HTML only)", "/console/inbox", n)
            measure(http, log, "  filtered by firm", "/console/inbox?firm=firm-0007", n)
            measure(http, log, "  filtered: due within 4 h", "/console/inbox?sla=due_soon", n)
            measure(http, log, "  the htmx refresh (fragment)", "/console/inbox/rows", n)
            print(f"  the page's first byte p95 is {page / api:.2f}x the API call's")
            first_task = re.search(r'href="(/console/firms/[^"]+/tasks/[^"]+)"',
                                   http.get("/console/inbox").text)  # fmt: skip
            task_path = first_task.group(1) if first_task else None
        with httpx.Client(base_url=base, timeout=60) as http:
            sign_in(http, admin)
            pages = ["/console/inbox", task_path] + [
                f"/console/firms/firm-0000{s}" for s in ("", "/users", "/clients", "/webhooks",
                "/billing", "/books", "/statements", "/records", "/compliance")]  # fmt: skip
            print("each page as a staff admin (bytes: HTML | with stylesheet and htmx | all of"
                  " it as sent, gzip), and its times over a tenth of the requests:")  # fmt: skip
            for path in filter(None, pages):
                html, total, packed = page_bytes(http, path)
                shown = urlsplit(path).path.replace("/console", "") or "/"
                shown = re.sub(r"/tasks/[0-9a-f-]+", "/tasks/{id}", shown)
                print(f"  {shown:<34} {html / 1024:5.1f} kB | {total / 1024:5.1f} kB | "
                      f"{packed / 1024:5.1f} kB")  # fmt: skip
                measure(http, log, "", path, max(5, n // 10))
    finally:
        server.terminate()
        server.wait(20)


if __name__ == "__main__":
    parser = _cli.parser(__doc__)
    parser.add_argument("--tenants", type=int, default=200, help="assigned to the staff member")
    parser.add_argument("--others", type=int, default=50, help="firms not assigned to them")
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    arguments = _cli.parse(parser, {"tenants": 5, "others": 2, "open": 700, "requests": 10})
    with services() as found:
        print(f"{os.cpu_count()} cores, shared by the server, PostgreSQL and this client")
        run(found.database_url, found.broker_url, arguments)
