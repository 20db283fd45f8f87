"""Compliance over the API: obligations and their deadlines (rolled off weekends and
holidays, reminded and escalated once), maker-checker filings with evidence kept in records,
sanctions list versions, screening with explanations, hits raised once per list entry as it
stands, and every refusal."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bpo.compliance import service
from bpo.compliance.models import SanctionsList
from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.settings import Settings
from bpo.work.starter import seed_catalog
from tests.conftest import build_app
from tests.support.auth import admin_of, bearer, make_user, staff_admin_token, user_token
from tests.support.isolation import assert_cross_tenant_404
from tests.support.jobs import running_worker, wait_for
from tests.support.records import filed, records_settings
from tests.support.tenants import make_tenant
from tests.support.work import staff_member

Client = AsyncTestClient[Litestar]
QUARTER_ENDS = "FREQ=MONTHLY;BYMONTH=3,6,9,12;BYMONTHDAY=-1"

SDN_V1 = (
    b'306,"BANCO NACIONAL DE CUBA",-0- ,"CUBA",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,'
    b"\"a.k.a. 'BNC'.\"\n"
    b'2674,"ABBAS, Abu","individual","SDGT","Director of PALESTINE LIBERATION FRONT - ABU ABBAS'
    b' FACTION",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,"DOB 10 Dec 1948."\n'
    b'6905,"ABU ZUBAYDAH","individual","SDGT",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,"DOB 12 Mar 1971;'
    b" POB Riyadh, Saudi Arabia; nationality Palestinian; Passport 484824 (Egypt) issued 18 Jan"
    b" 1984; a.k.a. 'TARIQ'.\"\n"
)
ALT = (
    b'306,220,"aka","NATIONAL BANK OF CUBA",-0- \n'
    b'6905,4785,"aka","ABU ZUBAIDA",-0- \n'
    b'6905,4741,"aka","HUSAYN, Zayn al-Abidin Muhammad",-0- \n'
    b'7157,5094,"aka","FARMACIAS VIDA",-0- \n'
)
# The next version: 2674 removed, 6905's remarks changed, 7157 added.
SDN_V2 = (
    SDN_V1.split(b"\n")[0] + b"\n"
    + SDN_V1.split(b"\n")[2].replace(b"DOB 12 Mar 1971;", b"DOB 12 Mar 1971; Gender Male;")
    + b"\n"
    + b'7157,"FARMACIA VIDA SUPREMA, S.A. DE C.V.",-0- ,"SDNTK",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,'
    b'-0- ,"R.F.C. FVS-870610-LX3 (Mexico)."\n'
)  # fmt: skip


@pytest.fixture
def comp_settings(settings: Settings, tmp_path: Path) -> Settings:
    return records_settings(settings, tmp_path / "data")


@pytest.fixture
async def api(comp_settings: Settings, db: Database) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=build_app(comp_settings)) as client:
        yield client


async def firm(api: Client, db: Database, settings: Settings, slug: str) -> dict[str, Any]:
    """A firm, its admin (the maker) and a second admin (the checker), and records classes
    `filings` (compliance mode) and `drafts` (governance)."""
    tenant = await make_tenant(db, slug)
    maker = await admin_of(db, settings, tenant)
    other = await make_user(db, f"checker@{slug}.example", tenants={tenant: "tenant_admin"})
    checker = bearer(await user_token(db, settings, other, tenant=tenant, role="tenant_admin"))
    for body in (
        {"code": "filings", "name": "Filings", "mode": "compliance", "retention_years": 10},
        {"code": "drafts", "name": "Drafts", "mode": "governance", "retention_years": 1,
         "retention_after": "received"},
    ):  # fmt: skip
        made = await api.post(f"/v1/tenants/{slug}/records/classes", json=body, headers=maker)
        assert made.status_code == 201, made.text
    return {"tenant": tenant, "maker": maker, "checker": checker,
            "base": f"/v1/tenants/{slug}/compliance"}  # fmt: skip


async def test_deadlines_roll_and_are_reminded_and_escalated_once(
    api: Client, db: Database, settings: Settings
) -> None:
    async with db.sessionmaker.begin() as session:
        await seed_catalog(session)  # the provider offers "regulatory-filing"
    f = await firm(api, db, settings, "comp-deadlines")
    body = {"regulator": "IRS", "jurisdiction": "US", "form": "941-like", "rrule": QUARTER_ENDS,
            "anchor": "2026-01-01", "offset_days": 30, "lead_days": 14, "open_request": True,
            "time_zone": "America/New_York"}  # fmt: skip
    made = await api.post(f"{f['base']}/obligations", json=body, headers=f["maker"])
    assert made.status_code == 201, made.text
    got = await api.get(f"{f['base']}/deadlines?from=2026-01-01&to=2027-03-31", headers=f["maker"])
    assert got.status_code == 200, got.text
    dues = [(d["period"], d["due"], d["rolled"]) for d in got.json()["items"]]
    assert [d[:2] for d in dues] == [
        ("2026-03-31", "2026-04-30"), ("2026-06-30", "2026-07-30"),
        ("2026-09-30", "2026-10-30"), ("2026-12-31", "2027-02-01"),  # 30 Jan 2027 is a Saturday
    ]  # fmt: skip
    assert dues[3][2] and "saturday" in dues[3][2].lower()
    first = got.json()["items"][0]
    assert first["due_at"].startswith("2026-05-01T0")  # the end of 30 April in New York, UTC

    tenant: TenantContext = f["tenant"]
    async with tenant_session(db.engine, tenant) as session:
        day = await service.sweep(session, tenant, date(2026, 4, 20))
    assert day["reminded"] == 1 and day["overdue"] == 0, day
    async with tenant_session(db.engine, tenant) as session:
        late = await service.sweep(session, tenant, date(2026, 5, 2))
        again = await service.sweep(session, tenant, date(2026, 5, 3))
    assert late["overdue"] == 1 and again["overdue"] == 0 and again["reminded"] == 0
    got = await api.get(f"{f['base']}/deadlines?from=2026-04-01&to=2026-05-31", headers=f["maker"])
    [q1] = got.json()["items"]
    assert q1["status"] == "overdue" and q1["request"] is not None
    dash = await api.get(f"{f['base']}/dashboard", headers=f["maker"])
    assert dash.status_code == 200 and dash.json()["overdue"][0]["id"] == q1["id"]
    # The provider's view: the firms a staff member serves, and only those.
    other = await make_tenant(db, "comp-deadlines-other")
    _, mine = await staff_member(db, settings, [tenant], skills=("compliance",))
    _, theirs = await staff_member(db, settings, [other], skills=("compliance",))
    seen = await api.get("/v1/staff/compliance/dashboard", headers=mine)
    assert seen.status_code == 200, seen.text
    [line] = [row for row in seen.json()["firms"] if row["slug"] == "comp-deadlines"]
    today = date.today().isoformat()
    every_due = await api.get(f"{f['base']}/deadlines?from=2026-01-01&to=2029-12-31",
                              headers=f["maker"])  # fmt: skip
    dues = sorted(d["due"] for d in every_due.json()["items"])
    assert line["overdue"] == sum(1 for d in dues if d < today)
    assert line["next_due"] == min(d for d in dues if d >= today)
    hidden = await api.get("/v1/staff/compliance/dashboard", headers=theirs)
    assert "comp-deadlines" not in [row["slug"] for row in hidden.json()["firms"]]


async def test_deadlines_page_by_cursor_in_due_date_order(
    api: Client, db: Database, settings: Settings
) -> None:
    f = await firm(api, db, settings, "comp-paged")
    for regulator in ("IRS", "HMRC", "FCA"):  # the same due dates: regulator breaks the tie
        body = {"regulator": regulator, "jurisdiction": "US", "form": "Q", "anchor": "2026-01-01",
                "rrule": QUARTER_ENDS}  # fmt: skip
        made = await api.post(f"{f['base']}/obligations", json=body, headers=f["maker"])
        assert made.status_code == 201, made.text
    url = f"{f['base']}/deadlines?from=2026-01-01&to=2027-12-31"
    whole = (await api.get(f"{url}&limit=500", headers=f["maker"])).json()
    assert whole["next_cursor"] is None and len(whole["items"]) >= 12
    keys = [(d["due"], d["regulator"], d["id"]) for d in whole["items"]]
    assert [k[:2] for k in keys] == sorted(k[:2] for k in keys)
    paged: list[tuple[str, str, str]] = []
    cursor = ""
    while True:
        page = await api.get(f"{url}&limit=5{cursor}", headers=f["maker"])
        assert page.status_code == 200, page.text
        paged += [(d["due"], d["regulator"], d["id"]) for d in page.json()["items"]]
        if page.json()["next_cursor"] is None:
            break
        cursor = f"&cursor={page.json()['next_cursor']}"
    assert paged == keys  # each deadline once, in the same order, ties split across pages
    other = await firm(api, db, settings, "comp-paged-other")
    theirs = await api.post(f"{other['base']}/obligations", headers=other["maker"], json={
        "regulator": "SEC", "jurisdiction": "US", "form": "Q", "anchor": "2026-01-01",
        "rrule": QUARTER_ENDS})  # fmt: skip
    their_id = (await api.get(f"{other['base']}/deadlines?from=2026-01-01&to=2027-12-31",
                              headers=other["maker"])).json()["items"][0]["id"]  # fmt: skip
    assert theirs.status_code == 201
    for bad in ("not-a-cursor", str(uuid.uuid4()), their_id):
        refused = await api.get(f"{url}&cursor={bad}", headers=f["maker"])
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json()["errors"][0]["parameter"] == "cursor"
    too_many = await api.get(f"{url}&limit=0", headers=f["maker"])
    assert too_many.status_code == 422 and "limit" in too_many.text


async def test_obligations_and_deadline_queries_refuse_bad_input(
    api: Client, db: Database, settings: Settings
) -> None:
    f = await firm(api, db, settings, "comp-bad-rules")
    url = f"{f['base']}/obligations"
    good = {"regulator": "HMRC", "jurisdiction": "GB", "form": "VAT", "rrule": QUARTER_ENDS,
            "anchor": "2026-01-01"}  # fmt: skip
    cases = [
        (good | {"rrule": "FREQ=FORTNIGHTLY"}, "#/rrule"),
        (good | {"rrule": "FREQ=HOURLY;INTERVAL=1"}, "#/rrule"),
        (good | {"rrule": "not a rule at all"}, "#/rrule"),
        (good | {"jurisdiction": "XX"}, "#/jurisdiction"),
        (good | {"time_zone": "Mars/Olympus"}, "#/time_zone"),
    ]
    for body, pointer in cases:
        refused = await api.post(url, json=body, headers=f["maker"])
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["errors"][0]["pointer"] == pointer, refused.text
    unknown = await api.post(url, json=good | {"colour": "red"}, headers=f["maker"])
    assert unknown.status_code in (400, 422)
    far = await api.get(f"{f['base']}/deadlines?from=2026-01-01&to=2046-01-01", headers=f["maker"])
    assert far.status_code == 422 and "days" in far.json()["detail"]
    listed = await api.get(url, headers=f["maker"])
    assert listed.json()["items"] == []  # nothing half-written
    templates = (await api.get(f"{url}/templates", headers=f["maker"])).json()
    assert len(templates) >= 5
    applied = await api.post(
        f"{url}/apply-template", json={"template": templates[0]["key"]}, headers=f["maker"]
    )
    assert applied.status_code == 201 and applied.json()["template"] == templates[0]["key"]


async def test_maker_checker_with_two_people_and_with_one(
    api: Client, db: Database, settings: Settings
) -> None:
    f = await firm(api, db, settings, "comp-filings")
    base, maker, checker = f["base"], f["maker"], f["checker"]
    draft_body = {"title": "VAT Q3", "period": "2026-09-30", "data": {"box1": 1200}}
    made = await api.post(f"{base}/filings", json=draft_body, headers=maker)
    assert made.status_code == 201, made.text
    url = f"{base}/filings/{made.json()['id']}"
    assert (await api.post(f"{url}/approve", headers=checker)).status_code == 409  # a draft
    submitted = await api.post(f"{url}/submit", headers=maker)
    assert submitted.status_code == 200 and submitted.json()["submitted_hash"]
    own = await api.post(f"{url}/approve", headers=maker)
    assert own.status_code == 403 and own.json()["type"].endswith("/maker-checker"), own.text
    assert "four-eyes" in own.json()["detail"]
    rejected = await api.post(f"{url}/reject", json={"reason": "box 1 misses October"},
                              headers=checker)  # fmt: skip
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    changed = await api.patch(url, json={"data": {"box1": 1350}}, headers=maker)
    assert changed.status_code == 200 and changed.json()["status"] == "draft"
    await api.post(f"{url}/submit", headers=maker)
    # Changed after submission: the approval must not go through on the old hash.
    await api.patch(url, json={"data": {"box1": 9999}}, headers=maker)
    stale = await api.post(f"{url}/approve", headers=checker)
    assert stale.status_code == 409 and "submit it again" in stale.json()["detail"]
    await api.post(f"{url}/submit", headers=maker)
    approved = await api.post(f"{url}/approve", headers=checker)
    assert approved.status_code == 200, approved.text
    assert (
        approved.json()["status"] == "approved"
        and approved.json()["checker"] != approved.json()["maker"]
    )

    slug = f["tenant"].slug
    proof = await filed(api, slug, maker, b"%PDF-1.4 the return as filed",
                        record_class="filings", title="VAT Q3 return")  # fmt: skip
    draft = await filed(api, slug, maker, b"notes", record_class="drafts", title="notes")
    filing = {"regulator_reference": "HMRC-1", "filed_on": "2026-11-07"}
    wrong = await api.post(f"{url}/file", json=filing | {"evidence": [draft["id"]]}, headers=maker)
    assert wrong.status_code == 422 and "compliance mode" in wrong.json()["detail"]
    nobody = filing | {"evidence": [str(uuid.uuid4())]}
    missing = await api.post(f"{url}/file", json=nobody, headers=maker)
    assert missing.status_code == 422 and missing.json()["errors"][0]["pointer"] == "#/evidence/0"
    done = await api.post(f"{url}/file", json=filing | {"evidence": [proof["id"]]}, headers=maker)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "filed" and body["locked_at"] and len(body["rejections"]) == 1
    assert body["evidence"][0]["sha256"] == proof["current_version"]["sha256"]
    locked = await api.patch(url, json={"title": "changed"}, headers=maker)
    assert locked.status_code == 409
    trail = await api.get(f"/v1/tenants/{slug}/audit/events?target=compliance.filing:"
                          f"{body['id']}&limit=50", headers=maker)  # fmt: skip
    actions = [e["action"] for e in trail.json()["items"]]
    for step in ("created", "submitted", "rejected", "approved", "filed"):
        assert f"compliance.filing.{step}" in actions, actions


async def _load(api: Client, staff: dict[str, str], sdn: bytes, on: str) -> dict[str, Any]:
    files = {"sdn": ("sdn.csv", sdn, "text/csv"), "alt": ("alt.csv", ALT, "text/csv")}
    loaded = await api.post(f"/v1/staff/sanctions/lists?published_on={on}", files=files,
                            headers=staff)  # fmt: skip
    assert loaded.status_code in (200, 201), loaded.text
    return dict(loaded.json())


async def _screened(db: Database, list_id: str) -> bool:
    async with db.sessionmaker() as session:
        row = await session.get(SanctionsList, uuid.UUID(list_id))
        return row is not None and row.firms_total > 0 and row.firms_screened == row.firms_total


async def test_screening_explains_hits_and_a_new_list_raises_only_new_ones(
    api: Client, db: Database, settings: Settings, comp_settings: Settings
) -> None:
    async with db.sessionmaker.begin() as session:
        await seed_catalog(session)  # the provider offers "sanctions-review"
    staff = bearer(await staff_admin_token(db, settings))
    f = await firm(api, db, settings, "comp-screening")
    base, admin = f["base"], f["maker"]
    bad = await api.post("/v1/staff/sanctions/lists", content=b"ent_num;name\n1;2\n",
                         headers={**staff, "Content-Type": "text/csv"})  # fmt: skip
    assert bad.status_code == 422, bad.text
    v1 = await _load(api, staff, SDN_V1, "2026-11-01")
    assert v1["entries"] == 3 and v1["source"] == "ofac_sdn"
    same = await api.post("/v1/staff/sanctions/lists", files={
        "sdn": ("sdn.csv", SDN_V1, "text/csv"), "alt": ("alt.csv", ALT, "text/csv")},
        headers=staff)  # fmt: skip
    assert same.status_code == 200 and same.json()["id"] == v1["id"]  # nothing new

    one = await api.post(f"{base}/screenings", json={"name": "Zubaida, Abu", "type": "person"},
                         headers=admin)  # fmt: skip
    assert one.status_code == 200, one.text
    [hit] = [h for h in one.json()["hits"] if h["source_id"] == "6905"]
    assert hit["score"] >= one.json()["threshold"] and hit["explanation"]
    strict = await api.put(f"{base}/settings", json={"threshold": 0.99}, headers=admin)
    assert strict.status_code == 200 and strict.json()["threshold"] == 0.99, strict.text
    typo = await api.post(f"{base}/screenings", json={"name": "Zubaidha, Abou"}, headers=admin)
    assert typo.json()["threshold"] == 0.99
    assert all(h["score"] >= 0.99 for h in typo.json()["hits"])
    reset = await api.put(f"{base}/settings", json={"threshold": None}, headers=admin)
    assert reset.json()["threshold"] == one.json()["threshold"]
    silly = await api.put(f"{base}/settings", json={"threshold": 0.1}, headers=admin)
    assert silly.status_code == 400 or silly.status_code == 422
    empty = await api.post(f"{base}/screenings", json={"name": "  ,. "}, headers=admin)
    assert empty.status_code == 422
    clean = await api.post(f"{base}/screenings", json={"name": "Maria Schneider",
                           "type": "person"}, headers=admin)  # fmt: skip
    assert clean.json()["hits"] == []

    parties = {}
    for name, kind in (("Banco Nacional de Cuba", "organization"), ("Abu Zubaydah", "person"),
                       ("Farmacia Vida Suprema SA de CV", "organization"),
                       ("Acme Trading GmbH", "organization")):  # fmt: skip
        made = await api.post(f"{base}/counterparties", json={"name": name, "kind": kind},
                              headers=admin)  # fmt: skip
        assert made.status_code == 201, made.text
        parties[name] = made.json()
    async with db.engine.connect() as conn:
        metered = await conn.scalar(
            text("SELECT coalesce(sum(quantity), 0) FROM platform.usage_events"
                 " WHERE tenant_id = :t AND meter = 'screenings'"),
            {"t": f["tenant"].tenant_id},
        )  # fmt: skip
    assert metered == 3 + 4  # three single screenings (a refused one is not), four parties
    assert parties["Banco Nacional de Cuba"]["open_hits"] == 1
    assert parties["Acme Trading GmbH"]["open_hits"] == 0
    hits = (await api.get(f"{base}/hits", headers=admin)).json()["items"]
    assert sorted(h["source_id"] for h in hits) == ["306", "6905"]
    assert all(h["request"] for h in hits)  # a review task for compliance staff each
    bank = next(h for h in hits if h["source_id"] == "306")
    decided = await api.post(f"{base}/hits/{bank['id']}/decide", json={
        "decision": "false_positive", "reason": "our client is the Swiss branch office"},
        headers=admin)  # fmt: skip
    assert decided.status_code == 200 and decided.json()["reviewer"]
    again = {"decision": "true_match", "reason": "x"}
    twice = await api.post(f"{base}/hits/{bank['id']}/decide", json=again, headers=admin)
    assert twice.status_code == 409

    async with running_worker(comp_settings):
        v2 = await _load(api, staff, SDN_V2, "2026-12-01")
        assert (v2["added"], v2["changed"], v2["removed"]) == (1, 1, 1), v2
        await wait_for(lambda: _screened(db, v2["id"]), timeout=120)
    after = (await api.get(f"{base}/hits", headers=admin)).json()["items"]
    new = [h for h in after if h["id"] not in {h["id"] for h in hits}]
    # 7157 is new; 6905 changed (a decision would not carry over); 306 stays decided.
    assert sorted(h["source_id"] for h in new) == ["6905", "7157"], new
    versions = (await api.get("/v1/staff/sanctions/lists", headers=staff)).json()["items"]
    assert [v["status"] for v in versions[:2]] == ["current", "superseded"]


async def test_another_firm_gets_404_and_the_database_refuses(
    api: Client, db: Database, settings: Settings
) -> None:
    a = await firm(api, db, settings, "comp-iso-a")
    b = await firm(api, db, settings, "comp-iso-b")
    filing = (await api.post(f"{b['base']}/filings", json={"title": "B's return"},
                             headers=b["maker"])).json()  # fmt: skip
    body = {"regulator": "IRS", "jurisdiction": "US", "form": "940", "rrule": "FREQ=YEARLY",
            "anchor": "2026-01-31"}  # fmt: skip
    obligation = (await api.post(f"{b['base']}/obligations", json=body,
                                 headers=b["maker"])).json()  # fmt: skip

    async def unchanged() -> Any:
        return (await api.get(f"{b['base']}/filings/{filing['id']}", headers=b["maker"])).json()

    mine = a["base"]
    paths = [
        ("GET", f"{mine}/filings/{filing['id']}", {}),
        ("PATCH", f"{mine}/filings/{filing['id']}", {"json": {"title": "mine"}}),
        ("POST", f"{mine}/filings/{filing['id']}/submit", {}),
        ("GET", f"{mine}/obligations/{obligation['id']}", {}),
        ("POST", f"{mine}/hits/{uuid.uuid4()}/decide",
         {"json": {"decision": "true_match", "reason": "x"}}),
        ("GET", f"{mine}/counterparties/{uuid.uuid4()}", {}),
        ("GET", f"{b['base']}/filings", {}),  # B's path with A's token
        ("GET", f"{b['base']}/deadlines", {}),
        ("POST", f"{b['base']}/screenings", {"json": {"name": "x"}}),
        ("GET", f"{b['base']}/dashboard", {}),
        ("GET", f"{b['base']}/obligations", {}),
        ("GET", f"{b['base']}/counterparties", {}),
        ("GET", f"{b['base']}/hits", {}),
        ("GET", f"{b['base']}/settings", {}),
        ("PUT", f"{b['base']}/settings", {"json": {"threshold": 0.9}}),
        ("POST", f"{b['base']}/screenings/batch", {"json": {"names": []}}),
        ("POST", f"{mine}/filings/{filing['id']}/approve", {}),
        ("POST", f"{mine}/filings/{filing['id']}/reject", {"json": {"reason": "x"}}),
        ("POST", f"{mine}/filings/{filing['id']}/file", {"json": {
            "regulator_reference": "x", "filed_on": "2026-11-07", "evidence": ["x"]}}),
    ]  # fmt: skip
    for method, path, extra in paths:
        await assert_cross_tenant_404(
            api, method, path, unchanged=unchanged, headers=a["maker"], **extra
        )
    async with db.engine.connect() as conn:
        await conn.execute(text(f'SET ROLE "{a["tenant"].role}"'))
        with pytest.raises(Exception, match="permission denied"):
            await conn.execute(text(f'SELECT * FROM "{b["tenant"].schema}".compliance_filings'))
        await conn.rollback()
        await conn.execute(text(f'SET ROLE "{a["tenant"].role}"'))
        with pytest.raises(Exception, match="permission denied"):
            await conn.execute(text("DELETE FROM platform.sanctions_entries"))
        await conn.rollback()
    staff_only = await api.get("/v1/staff/sanctions/lists", headers=a["maker"])
    assert staff_only.status_code in (401, 403)


FTM = Path(__file__).parent / "data" / "sanctions" / "ftm_sample.jsonl"


async def test_followthemoney_lists_batches_and_names_in_any_script(
    api: Client, db: Database, settings: Settings, comp_settings: Settings
) -> None:
    staff = bearer(await staff_admin_token(db, settings))
    f = await firm(api, db, settings, "comp-ftm")
    base, admin = f["base"], f["maker"]
    files = {"list": ("entities.ftm.json", FTM.read_bytes(), "application/json")}
    loaded = await api.post("/v1/staff/sanctions/lists", files=files, headers=staff)
    assert loaded.status_code in (200, 201), loaded.text
    assert loaded.json()["source"] == "opensanctions" and loaded.json()["entries"] >= 2
    cut = FTM.read_bytes().split(b"\n")[0] + b'\n{"id": "x", "schema": "Person", "prop\n'
    broken = {"list": ("bad.ftm.json", cut, "application/json")}
    refused = await api.post("/v1/staff/sanctions/lists", files=broken, headers=staff)
    assert refused.status_code == 422 and "line 2" in refused.json()["detail"], refused.text

    # The same person, written in Cyrillic, with a matching birth date.
    cyrillic = {"name": "Иванов Пётр", "type": "person", "birth_date": "1968-03-14"}
    found = await api.post(f"{base}/screenings", json=cyrillic, headers=admin)
    assert found.status_code == 200, found.text
    assert [h["source_id"] for h in found.json()["hits"]][:1] == ["ex-person-ivanov"]
    for name in ("王小明", "محمد عبد الله", "x" * 300):
        odd = await api.post(f"{base}/screenings", json={"name": name}, headers=admin)
        assert odd.status_code == 200, (name, odd.text)
    too_long = await api.post(f"{base}/screenings", json={"name": "x" * 301}, headers=admin)
    assert too_long.status_code in (400, 422)

    batch = {"names": [{"name": "Petr Ivanov", "type": "person"},
                       {"name": "Globex Corporation"}]}  # fmt: skip
    async with running_worker(comp_settings):
        queued = await api.post(f"{base}/screenings/batch", json=batch, headers=admin)
        assert queued.status_code == 202, queued.text

        async def screened() -> bool:
            got = (await api.get(f"{base}/counterparties", headers=admin)).json()["items"]
            return len(got) == 2 and all(p["screened_at"] for p in got)

        await wait_for(screened, timeout=60)
    parties = {p["name"]: p for p in (await api.get(f"{base}/counterparties",
                                                     headers=admin)).json()["items"]}  # fmt: skip
    assert (
        parties["Petr Ivanov"]["open_hits"] == 1 and parties["Globex Corporation"]["open_hits"] == 0
    )
