"""Compliance APIs under /v1/tenants/{slug}/compliance (obligations and deadlines, filings,
counterparties, screening, hits, the dashboard) and the provider's sanctions lists under
/v1/staff/sanctions/lists. API clients need `compliance:read` / `compliance:write`."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter, QueryParameter
from litestar.types import ControllerRouterHandler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.audit.service import actor_of
from bpo.compliance import calendar, filings, obligations, sanctions, screening, service
from bpo.compliance.jobs import BATCH_JOB, RESCREEN_JOB, has_compliance
from bpo.compliance.models import Counterparty, Filing, Hit, Obligation
from bpo.compliance.schemas import (
    ApproveIn,
    CounterpartyIn,
    CounterpartyOut,
    CounterpartyPage,
    Dashboard,
    DeadlinePage,
    DecideIn,
    FileIn,
    FilingIn,
    FilingOut,
    FilingPage,
    FilingUpdate,
    HitOut,
    HitPage,
    JobAccepted,
    ListOut,
    ListPage,
    ObligationIn,
    ObligationOut,
    ObligationPage,
    RejectIn,
    ScreeningBatchIn,
    ScreeningIn,
    ScreeningOut,
    StaffDashboard,
    TemplateApply,
    TemplateOut,
    ThresholdIn,
    ThresholdOut,
)
from bpo.core.errors import Problem
from bpo.core.pagination import page_of, uuid_cursor
from bpo.core.tenancy import TenantContext, issue_tenant_context, tenant_session
from bpo.identity.accounts import visible_tenants
from bpo.identity.guards import STAFF_ADMIN, STAFF_ROLES, TENANT_ADMINS, Principal, requires
from bpo.jobs.outbox import enqueue

READ = requires("compliance:read")
WRITE = requires("compliance:write")
STAFF_READ = requires("compliance:read", roles=STAFF_ROLES, tenant_bound=False)
TENANT_ADMIN_WRITE = requires("compliance:write", roles=TENANT_ADMINS)
BASE = "/v1/tenants/{slug:str}/compliance"
Page = Annotated[int, Parameter(ge=1, le=500)]
Cursor = Annotated[str | None, Parameter(max_length=100)]


def _today() -> date:
    return datetime.now(UTC).date()


def _created(location: str, body: Any) -> Response[Any]:
    return Response(body, status_code=201, headers={"Location": location})


class ObligationsController(Controller):
    path = BASE
    tags = ["compliance"]

    @get("/obligations", guards=[READ], operation_id="listObligations", summary="Obligations")
    async def list_obligations(
        self, tenant_db: NamedDependency[AsyncSession], limit: Page = 100, cursor: Cursor = None
    ) -> ObligationPage:
        query = select(Obligation).order_by(Obligation.id).limit(limit + 1)
        if cursor:
            query = query.where(Obligation.id > uuid_cursor(cursor))
        rows = list(await tenant_db.scalars(query))
        rows, after = page_of(rows, limit)
        return ObligationPage([obligations.obligation_out(o) for o in rows], after)

    @post(
        "/obligations",
        guards=[WRITE],
        status_code=201,
        operation_id="createObligation",
        summary="Add an obligation (its deadlines are generated for the horizon)",
    )
    async def create(
        self,
        data: JSONBody[ObligationIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[ObligationOut]:
        o = await obligations.create(tenant_db, tenant, principal, data, _today())
        return _created(f"/v1/tenants/{tenant.slug}/compliance/obligations/{o.id}",
                        obligations.obligation_out(o))  # fmt: skip

    @get(
        "/obligations/templates",
        guards=[READ],
        operation_id="listObligationTemplates",
        summary="The library of common obligations a firm can apply",
    )
    async def templates(self) -> list[TemplateOut]:
        return [obligations.template_out(t) for t in calendar.TEMPLATES.values()]

    @post(
        "/obligations/apply-template",
        guards=[WRITE],
        status_code=201,
        operation_id="applyObligationTemplate",
        summary="Add an obligation from the library",
    )
    async def apply(
        self,
        data: JSONBody[TemplateApply],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[ObligationOut]:
        o = await obligations.apply_template(tenant_db, tenant, principal, data, _today())
        return _created(f"/v1/tenants/{tenant.slug}/compliance/obligations/{o.id}",
                        obligations.obligation_out(o))  # fmt: skip

    @get(
        "/obligations/{obligation_id:uuid}",
        guards=[READ],
        operation_id="getObligation",
        summary="An obligation",
    )
    async def show(
        self, obligation_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
    ) -> ObligationOut:
        return obligations.obligation_out(await obligations.get(tenant_db, str(obligation_id)))

    @get(
        "/deadlines",
        guards=[READ],
        operation_id="listDeadlines",
        summary="Deadlines due between two days (at most ~10 years at a time), by due date, paged",
    )
    async def deadlines(
        self,
        tenant_db: NamedDependency[AsyncSession],
        start: Annotated[date | None, QueryParameter(name="from")] = None,
        end: Annotated[date | None, QueryParameter(name="to")] = None,
        deadline_status: Annotated[
            Literal["upcoming", "due_soon", "overdue", "filed", "cancelled"] | None,
            QueryParameter(name="status"),
        ] = None,
        limit: Page = 100,
        cursor: Cursor = None,
    ) -> DeadlinePage:
        start = start or _today()
        end = end or start + timedelta(days=90)
        items, next_cursor = await obligations.deadline_page(
            tenant_db, start, end, deadline_status, cursor, limit
        )
        return DeadlinePage(items, next_cursor)

    @get("/settings", guards=[READ], operation_id="getComplianceSettings",
         summary="The firm's screening threshold")  # fmt: skip
    async def settings(self, tenant_db: NamedDependency[AsyncSession]) -> ThresholdOut:
        return ThresholdOut(await screening.threshold_of(tenant_db))

    @put("/settings", guards=[TENANT_ADMIN_WRITE], operation_id="setComplianceSettings",
         summary="Set the firm's screening threshold (tenant admins)")  # fmt: skip
    async def set_settings(
        self,
        data: JSONBody[ThresholdIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> ThresholdOut:
        return ThresholdOut(
            await screening.set_threshold(tenant_db, tenant, principal, data.threshold)
        )

    @get("/dashboard", guards=[READ], operation_id="complianceDashboard", summary="Dashboard")
    async def dashboard(self, tenant_db: NamedDependency[AsyncSession]) -> Dashboard:
        return await service.dashboard(tenant_db, _today())


FilingStatus = Annotated[
    Literal["draft", "submitted", "approved", "rejected", "filed"] | None,
    QueryParameter(name="status"),
]


class FilingsController(Controller):
    path = f"{BASE}/filings"
    tags = ["compliance"]

    @get("/", guards=[READ], operation_id="listFilings", summary="Filings")
    async def list_filings(
        self,
        tenant_db: NamedDependency[AsyncSession],
        filing_status: FilingStatus = None,
        limit: Page = 100,
        cursor: Cursor = None,
    ) -> FilingPage:
        query = select(Filing).order_by(Filing.id).limit(limit + 1)
        if filing_status:
            query = query.where(Filing.status == filing_status)
        if cursor:
            query = query.where(Filing.id > uuid_cursor(cursor))
        rows = list(await tenant_db.scalars(query))
        rows, after = page_of(rows, limit)
        return FilingPage([filings.filing_out(f) for f in rows], after)

    @post(
        "/",
        guards=[WRITE],
        status_code=201,
        operation_id="draftFiling",
        summary="Draft a filing (its maker is the caller)",
    )
    async def draft(
        self,
        data: JSONBody[FilingIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[FilingOut]:
        f = await filings.create(tenant_db, tenant, principal, data)
        return _created(f"/v1/tenants/{tenant.slug}/compliance/filings/{f.id}",
                        filings.filing_out(f))  # fmt: skip

    @get("/{filing_id:uuid}", guards=[READ], operation_id="getFiling", summary="A filing")
    async def show(
        self, filing_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
    ) -> FilingOut:
        return filings.filing_out(await filings.get(tenant_db, filing_id))

    @patch(
        "/{filing_id:uuid}",
        guards=[WRITE],
        operation_id="changeFiling",
        summary="Change a filing not yet filed (a submitted one must be submitted again)",
    )
    async def change(
        self,
        filing_id: FromPath[uuid.UUID],
        data: JSONBody[FilingUpdate],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> FilingOut:
        f = await filings.get(tenant_db, filing_id, lock=True)
        return filings.filing_out(await filings.update(tenant_db, tenant, principal, f, data))

    @post(
        "/{filing_id:uuid}/submit",
        guards=[WRITE],
        status_code=200,
        operation_id="submitFiling",
        summary="Submit for approval (the data's hash is kept)",
    )
    async def submit(
        self,
        filing_id: FromPath[uuid.UUID],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> FilingOut:
        f = await filings.get(tenant_db, filing_id, lock=True)
        return filings.filing_out(await filings.submit(tenant_db, tenant, principal, f))

    @post(
        "/{filing_id:uuid}/approve",
        guards=[WRITE],
        status_code=200,
        operation_id="approveFiling",
        summary="Approve (a person other than the maker; 409 if the data changed)",
    )
    async def approve(
        self,
        filing_id: FromPath[uuid.UUID],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
        data: JSONBody[ApproveIn | None] = None,
    ) -> FilingOut:
        f = await filings.get(tenant_db, filing_id, lock=True)
        return filings.filing_out(await filings.approve(tenant_db, tenant, principal, f))

    @post(
        "/{filing_id:uuid}/reject",
        guards=[WRITE],
        status_code=200,
        operation_id="rejectFiling",
        summary="Reject with a reason (not by the maker)",
    )
    async def reject(
        self,
        filing_id: FromPath[uuid.UUID],
        data: JSONBody[RejectIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> FilingOut:
        f = await filings.get(tenant_db, filing_id, lock=True)
        return filings.filing_out(
            await filings.reject(tenant_db, tenant, principal, f, data.reason)
        )

    @post(
        "/{filing_id:uuid}/file",
        guards=[WRITE],
        status_code=200,
        operation_id="fileFiling",
        summary="Record it as filed with the regulator, with its evidence; then locked",
    )
    async def file(
        self,
        filing_id: FromPath[uuid.UUID],
        data: JSONBody[FileIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> FilingOut:
        f = await filings.get(tenant_db, filing_id, lock=True)
        return filings.filing_out(await filings.mark_filed(tenant_db, tenant, principal, f, data))


class ScreeningController(Controller):
    path = BASE
    tags = ["compliance"]

    @get(
        "/counterparties",
        guards=[READ],
        operation_id="listCounterparties",
        summary="Counterparties",
    )
    async def parties(
        self, tenant_db: NamedDependency[AsyncSession], limit: Page = 100, cursor: Cursor = None
    ) -> CounterpartyPage:
        query = select(Counterparty).order_by(Counterparty.id).limit(limit + 1)
        if cursor:
            query = query.where(Counterparty.id > uuid_cursor(cursor))
        rows = list(await tenant_db.scalars(query))
        rows, after = page_of(rows, limit)
        hits = await screening.open_hits_of(tenant_db, [p.id for p in rows])
        return CounterpartyPage([screening.party_out(p, hits.get(p.id, 0)) for p in rows], after)

    @post(
        "/counterparties",
        guards=[WRITE],
        status_code=201,
        operation_id="addCounterparty",
        summary="Add a counterparty (screened at once)",
    )
    async def add_party(
        self,
        data: JSONBody[CounterpartyIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[CounterpartyOut]:
        party, raised = await screening.add_party(tenant_db, tenant, principal, data)
        return _created(f"/v1/tenants/{tenant.slug}/compliance/counterparties/{party.id}",
                        screening.party_out(party, raised))  # fmt: skip

    @get(
        "/counterparties/{party_id:uuid}",
        guards=[READ],
        operation_id="getCounterparty",
        summary="A counterparty",
    )
    async def party(
        self, party_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
    ) -> CounterpartyOut:
        found = await tenant_db.get(Counterparty, party_id)
        if found is None:
            raise Problem(404, "not-found", f"no counterparty {party_id}")
        hits = await screening.open_hits_of(tenant_db, [found.id])
        return screening.party_out(found, hits.get(found.id, 0))

    @post(
        "/screenings",
        guards=[WRITE],
        status_code=200,
        operation_id="screenName",
        summary="Screen one name now: the hits above the threshold, each explained",
    )
    async def screen(
        self,
        data: JSONBody[ScreeningIn],
        tenant: NamedDependency[TenantContext],
        tenant_db: NamedDependency[AsyncSession],
    ) -> ScreeningOut:
        return await screening.screen_name(tenant_db, tenant, data)

    @post(
        "/screenings/batch",
        guards=[WRITE],
        status_code=202,
        operation_id="screenBatch",
        summary="Screen many names (added as counterparties), or every counterparty, as a job",
    )
    async def batch(
        self,
        data: JSONBody[ScreeningBatchIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[JobAccepted]:
        names = [
            {"name": n.name, "kind": n.type or "organization", "country": n.country,
             "birth_date": n.birth_date, "identifiers": n.identifiers}
            for n in data.names
        ]  # fmt: skip
        message = await enqueue(tenant_db, BATCH_JOB, names, actor_of(principal), tenant=tenant)
        return Response(JobAccepted(str(message), "queued"), status_code=202)

    @get("/hits", guards=[READ], operation_id="listHits", summary="Screening hits")
    async def hits(
        self,
        tenant_db: NamedDependency[AsyncSession],
        hit_status: Annotated[
            Literal["open", "true_match", "false_positive"] | None, QueryParameter(name="status")
        ] = None,
        limit: Page = 100,
        cursor: Cursor = None,
    ) -> HitPage:
        query = (
            select(Hit, Counterparty.name)
            .join(Counterparty, Counterparty.id == Hit.counterparty_id)
            .order_by(Hit.id)
            .limit(limit + 1)
        )
        if hit_status:
            query = query.where(Hit.status == hit_status)
        if cursor:
            query = query.where(Hit.id > uuid_cursor(cursor))
        rows = list((await tenant_db.execute(query)).all())
        more, rows = len(rows) > limit, rows[:limit]
        return HitPage(
            [screening.hit_out(h, name) for h, name in rows], str(rows[-1][0].id) if more else None
        )

    @post(
        "/hits/{hit_id:uuid}/decide",
        guards=[WRITE],
        status_code=200,
        operation_id="decideHit",
        summary="True match or false positive, with the reason",
    )
    async def decide(
        self,
        hit_id: FromPath[uuid.UUID],
        data: JSONBody[DecideIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> HitOut:
        return await screening.decide(tenant_db, tenant, principal, hit_id, data)


@get(
    "/v1/staff/compliance/dashboard",
    guards=[STAFF_READ],
    tags=["compliance"],
    operation_id="staffComplianceDashboard",
    summary="Deadlines, filings awaiting a checker and open hits of the firms one serves",
)
async def staff_dashboard(
    principal: NamedDependency[Principal], db_session: NamedDependency[AsyncSession], state: State
) -> StaffDashboard:
    assert principal.user_id is not None and principal.role is not None
    firms = await visible_tenants(db_session, principal.user_id, principal.role)
    out = []
    for firm in firms:
        tenant = issue_tenant_context(firm.id, firm.slug)
        if not await has_compliance(state.db.engine, tenant):
            continue
        async with tenant_session(state.db.engine, tenant) as session:
            out.append(await service.firm_summary(session, firm.slug, firm.name, _today()))
    return StaffDashboard(out)


class SanctionsController(Controller):
    path = "/v1/staff/sanctions/lists"
    tags = ["compliance"]

    @get(
        "/",
        guards=[STAFF_READ],
        operation_id="listSanctionsLists",
        summary="Loaded sanctions list versions, newest first",
    )
    async def versions(self, db_session: NamedDependency[AsyncSession]) -> ListPage:
        return ListPage([sanctions.list_out(v) for v in await sanctions.versions(db_session)])

    @post(
        "/",
        guards=[STAFF_ADMIN],
        status_code=201,
        operation_id="loadSanctionsList",
        summary="Load a list version (OFAC sdn/alt/add CSV or FollowTheMoney JSON lines)",
        request_max_body_size=sanctions.MAX_FILE_BYTES,
    )
    async def load(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
        published_on: FromQuery[date | None] = None,
        filename: Annotated[str | None, Parameter(max_length=200)] = None,
    ) -> Response[ListOut]:
        files = await _files(request, filename)
        row, new = await sanctions.load(db_session, files, actor_of(principal), published_on)
        if new:
            await enqueue(db_session, RESCREEN_JOB, str(row.id), actor_of(principal), tenant=None)
        return Response(sanctions.list_out(row), status_code=201 if new else 200)


async def _files(request: Request[Any, Any, Any], filename: str | None) -> list[tuple[str, bytes]]:
    """The list's files: every file part of a multipart form, or the raw body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        return [(filename or "list", await request.body())]
    form = await request.form()
    files = [
        (str(part.filename or key), await part.read())
        for key, part in form.multi_items()
        if not isinstance(part, str)
    ]
    if not files:
        raise Problem(422, "validation-error", "the form has no file part",
                      errors=[{"pointer": "#/files", "detail": "missing"}])  # fmt: skip
    return files


route_handlers: list[ControllerRouterHandler] = [
    ObligationsController,
    FilingsController,
    ScreeningController,
    SanctionsController,
    staff_dashboard,
]
