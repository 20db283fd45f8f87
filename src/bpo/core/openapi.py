"""Finishing touches on the generated OpenAPI document and on Litestar's OPTIONS answers."""

from __future__ import annotations

from collections.abc import Iterator

from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Reference,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.openapi.spec.responses import Responses
from litestar.routes import HTTPRoute

from bpo.core.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, ProblemDocument

PROBLEM = "Problem"
_STRING = Schema(type=OpenAPIType.STRING)
_FIELD_ERROR = Schema(
    type=OpenAPIType.OBJECT,
    required=["detail"],
    properties={
        "detail": _STRING,
        "pointer": Schema(
            type=OpenAPIType.STRING, description="JSON Pointer (RFC 6901) into the request body"
        ),
        "parameter": Schema(type=OpenAPIType.STRING, description="A query, path or header name"),
        "location": Schema(type=OpenAPIType.STRING, description="Where `parameter` is"),
    },
)
_PROBLEM_SCHEMA = Schema(
    title=PROBLEM,
    type=OpenAPIType.OBJECT,
    required=["type", "title", "status"],
    properties={
        "type": Schema(
            type=OpenAPIType.STRING,
            format=OpenAPIFormat.URI_REFERENCE,
            description="Stable identifier of the kind of problem: branch on it",
        ),
        "title": Schema(type=OpenAPIType.STRING, description="Never varies for a `type`"),
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING, description="This occurrence, for people"),
        "instance": Schema(type=OpenAPIType.STRING, description="The request's path"),
        "request_id": Schema(type=OpenAPIType.STRING, description="Quote it to support"),
        "errors": Schema(
            type=OpenAPIType.ARRAY,
            items=_FIELD_ERROR,
            description="Validation problems: one entry per field",
        ),
    },
    description="RFC 9457 problem details (`application/problem+json`). A problem may carry "
    "further members, such as `checks` on a readiness problem.",
    examples=[
        {
            "type": PROBLEM_BASE + "not-found",
            "title": "Not found",
            "status": 404,
            "detail": "No tenant 'acme'.",
            "instance": "/v1/tenants/acme",
            "request_id": "0196b6a4-1f9e-7c3d-9a41-6a1f4d2e8b10",
        }
    ],
)
_LITESTAR_400 = "Bad request syntax or unsupported method"  # its validation 400's text


def document_problems(app: Litestar) -> None:
    """Every error response of every operation is one shared `Problem` component: a
    `default` on each operation, and each 4xx/5xx that Litestar or a route described inline
    (or with its own copy of the problem struct). Error responses that name another
    component, in another media type (OAuth's RFC 6749 errors), are left as declared."""
    if app.openapi_config is None:
        return
    schema = app.openapi_schema
    components = schema.components or Components()
    schemas = components.schemas or {}
    schemas.pop(ProblemDocument.__name__, None)  # a route's copy of the same shape
    schemas[PROBLEM] = _PROBLEM_SCHEMA
    components.schemas = schemas
    schema.components = components
    for operation in _operations(schema):
        operation.responses = _with_problems(operation.responses or {})


def _operations(schema: OpenAPI) -> Iterator[Operation]:
    for path_item in (schema.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch", "head", "options", "trace"):
            operation = getattr(path_item, method, None)
            if operation is not None:
                yield operation


def _with_problems(responses: Responses) -> Responses:
    out: Responses = {}
    for code, response in responses.items():
        if isinstance(response, Reference) or not _is_error(code) or _names_its_own(response):
            out[code] = response
        elif code == "400" and response.description == _LITESTAR_400:
            # Litestar's validation 400: malformed input is a 400 here, invalid input a 422.
            out["400"] = _problem_response("The request could not be read (malformed or ambiguous)")
            out["422"] = _problem_response("The request is not valid: `errors` names each field")
        else:
            out[code] = _problem_response(response.description or "A problem (RFC 9457)")
    out.setdefault("default", _problem_response("A problem (RFC 9457)"))
    return out


def _is_error(code: str) -> bool:
    return code == "default" or code[:1] in ("4", "5")


def _names_its_own(response: OpenAPIResponse) -> bool:
    content = response.content or {}
    return bool(content) and all(
        media_type != PROBLEM_MEDIA_TYPE
        and isinstance(body.schema, Reference)
        and body.schema.ref.rsplit("/", 1)[-1] != ProblemDocument.__name__
        for media_type, body in content.items()
    )


def _problem_response(description: str) -> OpenAPIResponse:
    ref = Reference(ref=f"#/components/schemas/{PROBLEM}")
    return OpenAPIResponse(
        description=description,
        content={PROBLEM_MEDIA_TYPE: OpenAPIMediaType(schema=ref)},
    )


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
