"""RFC 9457 problem details for every error the API returns.

Each problem has a stable `type` URI (an identifier: clients branch on it), a short `title`
that never varies for a type, a `detail` for this occurrence, the `instance` path and the
`request_id` to quote to support. Validation problems add `errors`, each with a JSON
Pointer (`pointer`) into the body or the name of the query/path/header `parameter`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotFoundException,
    SerializationException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DBAPIError, IntegrityError

from bpo.core.db import is_database_unavailable

PROBLEM_BASE = "https://bpo.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

log = structlog.get_logger("bpo.errors")

# slug -> title; the title of a type never changes (RFC 9457 §3.1.3).
PROBLEM_TITLES: dict[str, str] = {
    "malformed-request": "The request could not be read",
    "ambiguous-request": "The request is ambiguous",
    "validation-error": "The request is not valid",
    "unauthorized": "Authentication is required",
    "forbidden": "Not allowed",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "not-acceptable": "Not acceptable",
    "conflict": "Conflict",
    "precondition-failed": "The resource changed since you read it",
    "idempotency-key-reused": "Idempotency-Key reused for a different request",
    "idempotency-key-in-use": "A request with this Idempotency-Key is in progress",
    "payload-too-large": "Request body too large",
    "unsupported-media-type": "Unsupported media type",
    "rate-limited": "Too many requests",
    "plan-limit-exceeded": "The plan's rate limit is exceeded",
    "quota-exceeded": "Plan quota exceeded",
    "bad-signature": "The signature does not verify",
    "task-claimed": "Another staff member holds the task",
    "lease-required": "The action needs your claim on the task",
    "four-eyes": "A reviewer cannot review their own work",
    "missing-skills": "The task needs skills the staff member lacks",
    "at-capacity": "The staff member holds as many tasks as their capacity",
    "period-invoiced": "The billing period is invoiced",
    "period-locked": "The accounting period is locked",
    "balance-condition": "The posting would break an account's balance condition",
    "already-reversed": "The entry has been reversed already",
    "account-not-empty": "The account still holds a balance",
    "retention-active": "The record is under retention",
    "legal-hold": "The record is under a legal hold",
    "digest-mismatch": "The content does not match its declared digest",
    "empty-body": "The request body is empty",
    "range-not-satisfiable": "The range is outside the content",
    "record-corrupted": "The stored record no longer matches its hash",
    "statement-refused": "The statement file cannot be imported",
    "currency-mismatch": "The amounts are in different currencies",
    "list-refused": "The sanctions list file cannot be loaded",
    "maker-checker": "A second person must do this (four-eyes rule)",
    "export-expired": "The export is no longer available",
    "upstream-refused": "The payment provider refused the request",
    "service-unavailable": "A dependency is unavailable",
    "database-unavailable": "The database is unavailable",
    "internal-error": "Internal server error",
}

_STATUS_SLUGS = {
    400: "malformed-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    416: "range-not-satisfiable",
    422: "validation-error",
    429: "rate-limited",
    503: "service-unavailable",
}


class ProblemDocument(msgspec.Struct, omit_defaults=True):
    """The body of every error response (documented in the OpenAPI schema)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, str]] | None = None


class Problem(Exception):
    """Raise from a service or route to answer with a problem response."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str | None = None,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or slug)
        self.status = status
        self.slug = slug
        self.title = title or PROBLEM_TITLES.get(slug, slug.replace("-", " ").capitalize())
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions


def invalid(
    pointer: str, detail: str, status: int = 422, slug: str = "validation-error"
) -> Problem:
    """A problem naming the field (JSON pointer) it is about, and why."""
    return Problem(
        status, slug, f"{pointer}: {detail}", errors=[{"pointer": pointer, "detail": detail}]
    )


def problem_response(
    request: Request[Any, Any, Any] | None,
    status: int,
    slug: str,
    detail: str | None = None,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title or PROBLEM_TITLES.get(slug, slug),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if request is not None:
        body["instance"] = request.url.path
        request_id = request.scope.get("state", {}).get("request_id")
        if request_id:
            body["request_id"] = request_id
    if extensions:
        body.update(extensions)
    return Response(
        content=body,
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _on_problem(request: Request[Any, Any, Any], exc: Problem) -> Response[dict[str, Any]]:
    return problem_response(
        request,
        exc.status,
        exc.slug,
        exc.detail,
        title=exc.title,
        headers=exc.headers,
        extensions=exc.extensions,
    )


def _on_validation(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    errors = [_field_error(item) for item in _as_list(exc.extra) if not _phantom(request, item)]
    if not errors:
        errors = [{"detail": exc.detail}]
    count = "1 field" if len(errors) == 1 else f"{len(errors)} fields"
    detail = f"{count} failed validation: " + "; ".join(_describe(e) for e in errors)
    return problem_response(request, 422, "validation-error", detail, extensions={"errors": errors})


def _phantom(request: Request[Any, Any, Any], item: Mapping[str, Any]) -> bool:
    """Litestar, re-checking each field after a body error, reports a path parameter that a
    dependency (not the handler) consumes as KeyError('slug'): the request was fine there."""
    key = item.get("key")
    source = item.get("source")
    return (
        str(getattr(source, "value", source)) == "path"
        and item.get("message") == repr(key)
        and key in request.path_params
    )


def _on_http_exception(
    request: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, Any]]:
    status = exc.status_code
    headers = dict(exc.headers or {})
    if isinstance(exc.__cause__, SerializationException) or _is_decode_error(exc):
        cause = str(exc.__cause__ or exc.detail)
        detail = f"The request body is not valid JSON: {_clean_decode_message(cause)}"
        return problem_response(request, 400, "malformed-request", detail, headers=headers)
    if isinstance(exc, NotFoundException) and exc.detail in ("", "Not Found"):
        detail = f"No resource at {request.url.path}."
    elif status == 405:
        allowed = headers.get("allow") or headers.get("Allow") or ""
        detail = f"{request.method} is not allowed here; allowed: {allowed or 'none'}."
    elif status == 413:
        limit = request.app.request_max_body_size
        detail = f"The request body exceeds the limit of {limit} bytes."
    else:
        detail = exc.detail
    slug = _STATUS_SLUGS.get(status, "internal-error" if status >= 500 else "malformed-request")
    return problem_response(request, status, slug, detail, headers=headers)


def _on_integrity(request: Request[Any, Any, Any], exc: IntegrityError) -> Response[dict[str, Any]]:
    """A constraint refused the write: the request conflicts with stored data; nothing changed."""
    constraint = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
    detail = "The request conflicts with existing data"
    detail += f" (constraint {constraint})." if constraint else "."
    return problem_response(request, 409, "conflict", detail)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, RecursionError) and "deserializ" in str(exc):
        detail = "The request body is not valid JSON: it is nested too deeply."
        return problem_response(request, 400, "malformed-request", detail)
    if isinstance(exc, DBAPIError) and (_sqlstate(exc) or "").startswith("22"):
        # SQLSTATE class 22 is "data exception": a value the database cannot store as given.
        reason = str(getattr(exc.orig, "args", [""])[0] or exc.orig).splitlines()[0]
        reason = reason.split(": ", 1)[-1] if reason.startswith("<class") else reason
        detail = f"A value in the request cannot be stored: {reason}"
        return problem_response(request, 422, "validation-error", detail)
    if is_database_unavailable(exc):
        log.warning("database_unavailable", error=_one_line(exc))
        return problem_response(
            request,
            503,
            "database-unavailable",
            "The database cannot be reached right now; retry shortly.",
            headers={"Retry-After": "5"},
        )
    log.exception("unhandled_error", exc_info=exc)
    return problem_response(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal-error",
        "An unexpected error occurred; quote the request_id to support.",
    )


def exception_handlers() -> ExceptionHandlersMap:
    return {
        Problem: _on_problem,
        ValidationException: _on_validation,
        HTTPException: _on_http_exception,
        IntegrityError: _on_integrity,
        Exception: _on_unexpected,
    }


# --- helpers -------------------------------------------------------------------------------

_INDEX = re.compile(r"\[(\d+)\]")


def _as_list(extra: Any) -> Sequence[Mapping[str, Any]]:
    if isinstance(extra, list):
        return [item for item in extra if isinstance(item, Mapping)]
    if isinstance(extra, Mapping):
        return [extra]
    return []


def _field_error(item: Mapping[str, Any]) -> dict[str, str]:
    message = str(item.get("message", "invalid value"))
    key = str(item.get("key", "") or "")
    raw_source = item.get("source", "") or ""
    source = str(getattr(raw_source, "value", raw_source))  # Litestar gives a ParamType enum
    if key in ("data", "") and message == "'data'":  # Litestar's KeyError for a missing body
        message = "a JSON request body is required"
    error: dict[str, str] = {"detail": message}
    if source == "body" or key in ("data", ""):
        path = "" if key in ("data", "") else key
        error["pointer"] = _json_pointer(path)
    else:
        error["parameter"] = key
        error["location"] = source or "query"
    return error


def _json_pointer(dotted: str) -> str:
    """`lines[0].amount` -> `#/lines/0/amount` (RFC 6901, as RFC 9457's example)."""
    if not dotted:
        return "#"
    dotted = _INDEX.sub(r".\1", dotted)
    parts = [p.replace("~", "~0").replace("/", "~1") for p in dotted.split(".") if p]
    return "#/" + "/".join(parts)


def _describe(error: Mapping[str, str]) -> str:
    where = error.get("pointer") or error.get("parameter") or "body"
    return f"{where}: {error['detail']}"


def _is_decode_error(exc: HTTPException) -> bool:
    return exc.status_code == 400 and isinstance(exc.__cause__, msgspec.DecodeError)


def _clean_decode_message(message: str) -> str:
    return message.removeprefix("Malformed JSON: ").removeprefix("JSON is malformed: ")


def _sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE behind a SQLAlchemy error, if the driver reported one."""
    current: BaseException | None = exc
    while current is not None:
        code = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(code, str):
            return code
        current = getattr(current, "orig", None) or current.__cause__
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


async def problem_asgi_response(
    scope: Mapping[str, Any],
    send: Any,
    status: int,
    slug: str,
    detail: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """A problem answered by a plain ASGI layer, before any route runs."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": PROBLEM_TITLES.get(slug, slug),
        "status": status,
        "detail": detail,
        "instance": scope["path"],
    }
    if request_id := scope.get("state", {}).get("request_id"):
        body["request_id"] = request_id
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": msgspec.json.encode(body)})


T = TypeVar("T")


async def strict_body(request: Request[Any, Any, Any], kind: type[T]) -> T:
    """The request body decoded without type coercion: the framework's decoding turns "12050"
    into 12050, which a route taking money must refuse. Call after the framework checked
    the body (so its problems come first); returns the body as `kind` or a 422 problem
    whose pointer names the field."""
    try:
        return msgspec.json.decode(await request.body(), type=kind)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$")
        pointer = _json_pointer(where.rstrip("`").lstrip("."))
        raise Problem(
            422,
            "validation-error",
            f"1 field failed validation: {pointer}: {message}",
            errors=[{"pointer": pointer, "detail": message}],
        ) from None
