"""A local HTTP server that answers like Stripe for the endpoints bpo uses.

The real `stripe` SDK talks to it over loopback (BPO_STRIPE_API_BASE). Responses are shaped
from Stripe's own fixtures (tests/data/stripe/fixtures3.json, MIT, with its LICENSE). It keeps
what tests need:
the objects created, every request (path, form or JSON body, Idempotency-Key), idempotent
replays of a key it has seen, and meter events unique by identifier: a repeat is answered
with Stripe's 400 on v1, and dropped without a word on the v2 meter event stream, which
takes up to 100 events a request with a meter event session's 15-minute token and
validates them after answering (a 401 `temporary_session_expired` once the token is old;
events it refuses are noted in `dropped`, as Stripe would report them later). Meter event
summaries aggregate as the meter's formula says (sum, count, last by timestamp; of events
sharing the last second, the first received: Stripe promises no order among them). Tests
can make it fail: answer 500/429 before doing anything, or do the work and lose the answer.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "stripe" / "fixtures3.json"
_PART = re.compile(r"([^\[\]]+)|\[([^\[\]]*)\]")


def stripe_fixtures() -> dict[str, Any]:
    resources: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]
    return resources


def parse_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding (items[0][price]=x) back into nested objects and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = [a or b for a, b in _PART.findall(key)]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


@dataclass
class Seen:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    status: int = 0


@dataclass
class StripeState:
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    meter_events: dict[str, dict[str, Any]] = field(default_factory=dict)  # by identifier
    sessions: dict[str, float] = field(default_factory=dict)  # stream token -> expires at
    session_ttl_s: float = 900.0
    dropped: list[tuple[str, str]] = field(default_factory=list)  # stream: identifier, why
    requests: list[Seen] = field(default_factory=list)
    replies: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    # Failure injection for meter events, consumed one per request:
    fail_before: list[int] = field(default_factory=list)  # answer this status, do nothing
    lose_after: int = 0  # do the work, answer 500, and keep no idempotent reply
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects.values() if o.get("object") == kind]

    def sent(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == path]


def _error(status: int, message: str, **extra: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"type": "invalid_request_error", "message": message, **extra}}


class StripeStandIn:
    def __init__(self) -> None:
        self.fixtures = stripe_fixtures()
        self.state = StripeState()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def totals(self) -> dict[tuple[str, str], Decimal]:
        """Meter event values summed per (customer, event name): what Stripe would bill."""
        out: dict[tuple[str, str], Decimal] = {}
        for event in self.state.meter_events.values():
            key = (event["payload"]["stripe_customer_id"], event["event_name"])
            out[key] = out.get(key, Decimal(0)) + Decimal(event["payload"]["value"])
        return out

    def _new(self, kind: str, prefix: str, params: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(self.fixtures[kind])
        obj.update({k: v for k, v in params.items() if k not in ("items",)})
        obj["id"] = f"{prefix}_{uuid.uuid4().hex[:14]}"
        obj["created"] = int(time.time())
        obj["livemode"] = False
        self.state.objects[obj["id"]] = obj
        return obj

    def route(
        self, method: str, path: str, params: dict[str, Any], auth: str = ""
    ) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path == "/v1/billing/meter_events":
            return self._meter_event(params)
        if method == "POST" and path == "/v2/billing/meter_event_session":
            return self._session()
        if method == "POST" and path == "/v2/billing/meter_event_stream":
            return self._stream(params, auth)
        if method == "GET" and (
            m := re.fullmatch(r"/v1/billing/meters/([^/]+)/event_summaries", path)
        ):
            return self._summaries(m.group(1), params)
        creators = {
            "/v1/billing/meters": ("billing.meter", "mtr"),
            "/v1/prices": ("price", "price"),
            "/v1/customers": ("customer", "cus"),
            "/v1/invoiceitems": ("invoiceitem", "ii"),
            "/v1/billing_portal/sessions": ("billing_portal.session", "bps"),
        }
        if method == "POST" and path in creators:
            obj = self._new(*creators[path], params)
            if path == "/v1/billing_portal/sessions":
                obj["url"] = f"https://billing.stripe.test/p/session/{obj['id']}"
            if path == "/v1/billing/meters":
                obj["status"] = "active"
            return 200, obj
        if method == "POST" and path == "/v1/subscriptions":
            obj = self._new("subscription", "sub", params)
            obj["status"] = "active"
            obj["items"] = {
                "object": "list",
                "data": [
                    {"id": f"si_{n}", "object": "subscription_item", "price": {"id": item["price"]}}
                    for n, item in enumerate(params.get("items", []))
                ],
            }
            return 200, obj
        return _error(404, f"Unrecognized request URL ({method}: {path})")

    def _meter_event(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        for name in ("event_name", "payload"):
            if name not in params:
                return _error(400, f"Missing required param: {name}.", param=name)
        identifier = params.get("identifier") or uuid.uuid4().hex
        stamp = int(params.get("timestamp") or time.time())
        if stamp < time.time() - 35 * 86400 or stamp > time.time() + 300:
            return _error(400, "Timestamp must be within the past 35 days", param="timestamp")
        if identifier in self.state.meter_events:
            return _error(
                400,
                f"An event already exists with identifier {identifier}.",
                code="resource_already_exists",
                param="identifier",
            )
        event = copy.deepcopy(self.fixtures["billing.meter_event"])
        event.update(
            identifier=identifier,
            event_name=params["event_name"],
            payload=params["payload"],
            timestamp=stamp,
            created=int(time.time()),
        )
        self.state.meter_events[identifier] = event
        return 200, event

    def _session(self) -> tuple[int, dict[str, Any]]:
        now = time.time()
        token = f"mes_tok_{uuid.uuid4().hex}"
        self.state.sessions[token] = now + self.state.session_ttl_s
        return 200, {
            "id": f"mes_{uuid.uuid4().hex[:14]}",
            "object": "v2.billing.meter_event_session",
            "authentication_token": token,
            "created": _rfc3339(now),
            "expires_at": _rfc3339(now + self.state.session_ttl_s),
            "livemode": False,
        }

    def _stream(self, params: dict[str, Any], auth: str) -> tuple[int, dict[str, Any]]:
        token = auth.removeprefix("Bearer ").strip()
        if self.state.sessions.get(token, 0) <= time.time():
            return 401, {"error": {"type": "temporary_session_expired",
                                   "code": "billing_meter_event_session_expired",
                                   "message": "The meter event session has expired."}}  # fmt: skip
        events = params.get("events")
        if not isinstance(events, list) or not 1 <= len(events) <= 100:
            return 400, {"error": {"type": "invalid_request_error", "code": "invalid_events",
                                   "message": "events must hold 1 to 100 events."}}  # fmt: skip
        for event in events:  # validated after the answer, as Stripe does
            at = datetime.fromisoformat(str(event.get("timestamp"))).timestamp()
            status, _ = self._meter_event(event | {"timestamp": int(at)})
            if status != 200:
                self.state.dropped.append((str(event.get("identifier")), f"status {status}"))
        return 200, {}

    def _summaries(self, meter_id: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        meter = self.state.objects.get(meter_id)
        if meter is None:
            return _error(404, f"No such meter: '{meter_id}'")
        start, end = int(params["start_time"]), int(params["end_time"])
        events = [
            e
            for e in self.state.meter_events.values()
            if e["event_name"] == meter["event_name"]
            and e["payload"]["stripe_customer_id"] == params["customer"]
            and start <= e["timestamp"] < end
        ]
        formula = meter.get("default_aggregation", {}).get("formula", "sum")
        values = [Decimal(e["payload"]["value"]) for e in events]
        if formula == "count":
            total = Decimal(len(events))
        elif formula == "last":
            latest = max((e["timestamp"] for e in events), default=None)
            first = next((e for e in events if e["timestamp"] == latest), None)
            total = Decimal(first["payload"]["value"]) if first else Decimal(0)
        else:
            total = sum(values, Decimal(0))
        summary = copy.deepcopy(self.fixtures["billing.meter_event_summary"])
        summary.update(meter=meter_id, start_time=start, end_time=end, id=f"mtrusg_{meter_id}")
        summary["aggregated_value"] = float(total)
        return 200, {"object": "list", "data": [summary], "has_more": False, "url": ""}

    def handle(
        self, method: str, path: str, params: dict[str, Any], key: str | None, auth: str = ""
    ) -> tuple[int, dict[str, Any]]:
        with self.state.lock:
            seen = Seen(method, path, params, key)
            self.state.requests.append(seen)
            replay = (key, path)
            if key and f"{replay}" in self.state.replies:
                seen.status, body = self.state.replies[f"{replay}"]
                return seen.status, body
            metered = path in ("/v1/billing/meter_events", "/v2/billing/meter_event_stream")
            if metered and self.state.fail_before:
                seen.status = self.state.fail_before.pop(0)
                return _error(seen.status, "Injected failure before processing")
            status, body = self.route(method, path, params, auth)
            if metered and self.state.lose_after and status == 200:
                self.state.lose_after -= 1
                seen.status = 500
                return _error(500, "Injected failure after processing")
            if key and method == "POST" and status < 500:
                self.state.replies[f"{replay}"] = (status, body)
            seen.status = status
            return status, body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else split.query.encode()
                if length and len(body) < length:  # the client died mid-request
                    self.close_connection = True
                    return
                raw = body.decode()
                v2 = split.path.startswith("/v2/")
                params = (json.loads(raw) if raw else {}) if v2 else parse_form(raw)
                status, body = standin.handle(
                    self.command, split.path, params, self.headers.get("Idempotency-Key"),
                    self.headers.get("Authorization") or "",
                )  # fmt: skip
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{uuid.uuid4().hex[:14]}")
                if status >= 500 or status == 429:
                    self.send_header("Stripe-Should-Retry", "false")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        return Handler


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@contextmanager
def stripe_standin() -> Iterator[StripeStandIn]:
    server = StripeStandIn()
    server.start()
    try:
        yield server
    finally:
        server.stop()
