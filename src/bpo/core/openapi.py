"""Finishing touches on the generated OpenAPI document and on Litestar's OPTIONS answers."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.routes import HTTPRoute

from bpo.core.errors import PROBLEM_MEDIA_TYPE

_PROBLEM_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["type", "title", "status"],
    properties={
        "type": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.URI_REFERENCE),
        "title": Schema(type=OpenAPIType.STRING),
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING),
        "instance": Schema(type=OpenAPIType.STRING),
        "request_id": Schema(type=OpenAPIType.STRING),
        "errors": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.OBJECT)),
    },
    description="RFC 9457 problem details",
)


def _problem_response(description: str) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        content={PROBLEM_MEDIA_TYPE: OpenAPIMediaType(schema=_PROBLEM_SCHEMA)},
    )


def document_problems(app: Litestar) -> None:
    """Every operation may answer a problem: say so (a `default` response), and describe
    Litestar's own 400 as the problem document it really is."""
    if app.openapi_config is None:
        return
    for path_item in (app.openapi_schema.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch", "head", "options"):
            operation = getattr(path_item, method, None)
            if operation is None:
                continue
            responses = operation.responses or {}
            responses.setdefault("default", _problem_response("A problem (RFC 9457)"))
            if "400" in responses and "oauth" not in (operation.tags or []):  # RFC 6749 errors
                responses["400"] = _problem_response("The request could not be read")
            operation.responses = responses


def fix_options_allow(app: Litestar) -> None:
    """Litestar 2.x makes a path's OPTIONS handler when the path's first method registers and
    never updates it, so `Allow` misses the methods registered after. Point each OPTIONS
    handler at its complete route."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or "OPTIONS" not in route.route_handler_map:
            continue
        handler = route.route_handler_map["OPTIONS"][0]
        for cell in handler.fn.__closure__ or ():
            if isinstance(cell.cell_contents, HTTPRoute) and cell.cell_contents is not route:
                cell.cell_contents = route
