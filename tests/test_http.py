"""HTTP behaviour every route shares: problems, request ids, docs, metrics, body limits."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from bpo.core.db import Database
from bpo.jobs.models import JobHeartbeat

Client = AsyncTestClient[Litestar]
PROBLEM = "application/problem+json"


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == f"https://bpo.dev/problems/{slug}"
    assert body["status"] == status
    assert body["title"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def count_heartbeats(db: Database) -> int:
    async with db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(JobHeartbeat)) or 0)


async def test_live_answers_ok(client: Client) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_database_and_broker(client: Client) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


async def test_unknown_route_is_a_404_problem(client: Client) -> None:
    body = assert_problem(await client.get("/v1/nothing-here"), 404, "not-found")
    assert body["instance"] == "/v1/nothing-here"
    assert "/v1/nothing-here" in body["detail"]


async def test_wrong_method_is_a_405_problem_with_allow(client: Client) -> None:
    response = await client.delete("/health/live")
    body = assert_problem(response, 405, "method-not-allowed")
    assert "GET" in response.headers["allow"]
    assert "DELETE" in body["detail"]


async def test_malformed_json_is_a_400_problem_and_writes_nothing(
    client: Client, db: Database
) -> None:
    response = await client.post(
        "/_probe/heartbeats",
        content=b'{"token": "abc",',
        headers={"content-type": "application/json"},
    )
    body = assert_problem(response, 400, "malformed-request")
    assert "JSON" in body["detail"]
    assert await count_heartbeats(db) == 0


async def test_json_nested_too_deeply_is_a_400_problem(client: Client, db: Database) -> None:
    response = await client.post(
        "/_probe/heartbeats",
        content=b"[" * 100_000 + b"]" * 100_000,
        headers={"content-type": "application/json"},
    )
    body = assert_problem(response, 400, "malformed-request")
    assert "nested too deeply" in body["detail"]
    assert await count_heartbeats(db) == 0


async def test_missing_body_is_a_422_saying_a_body_is_required(client: Client) -> None:
    response = await client.post(
        "/_probe/heartbeats", content=b"", headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"] == [{"detail": "a JSON request body is required", "pointer": "#"}]


async def test_a_value_the_database_cannot_store_is_a_422(client: Client, db: Database) -> None:
    response = await client.post("/_probe/heartbeats", json={"token": "nul\u0000byte"})
    body = assert_problem(response, 422, "validation-error")
    assert "0x00" in body["detail"]
    assert await count_heartbeats(db) == 0


async def test_head_is_get_without_a_body(client: Client) -> None:
    got = await client.get("/health/live")
    head = await client.head("/health/live")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    assert head.headers["x-request-id"]


async def test_wrong_type_is_a_422_with_a_pointer(client: Client, db: Database) -> None:
    response = await client.post("/_probe/heartbeats", json={"token": "t", "worker_pid": "x"})
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"] == [{"detail": "Expected `int`, got `str`", "pointer": "#/worker_pid"}]
    assert await count_heartbeats(db) == 0


async def test_nested_error_points_into_the_array(client: Client) -> None:
    response = await client.post(
        "/_probe/heartbeats", json={"token": "t", "labels": [{"name": "ok"}, {"name": ""}]}
    )
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["pointer"] == "#/labels/1/name"


async def test_unknown_field_is_refused(client: Client) -> None:
    response = await client.post("/_probe/heartbeats", json={"token": "t", "amount": 5})
    body = assert_problem(response, 422, "validation-error")
    assert "amount" in body["errors"][0]["detail"]


async def test_missing_field_is_refused(client: Client) -> None:
    response = await client.post("/_probe/heartbeats", json={"worker_pid": 1})
    body = assert_problem(response, 422, "validation-error")
    assert "token" in body["errors"][0]["detail"]


async def test_bad_query_parameter_names_the_parameter(client: Client) -> None:
    response = await client.get("/_probe/heartbeats", params={"limit": "many"})
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["parameter"] == "limit"
    assert body["errors"][0]["location"] == "query"


async def test_oversized_body_is_a_413_problem(client: Client, db: Database) -> None:
    big = b'{"token": "' + b"x" * 2_000_000 + b'"}'
    response = await client.post(
        "/_probe/heartbeats", content=big, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload-too-large")
    assert await count_heartbeats(db) == 0


async def test_request_commits_when_the_handler_succeeds(client: Client, db: Database) -> None:
    response = await client.post("/_probe/heartbeats", json={"token": "kept", "worker_pid": 7})
    assert response.status_code == 201
    assert response.json() == {"token": "kept", "worker_pid": 7}
    assert await count_heartbeats(db) == 1


async def test_request_rolls_back_when_the_handler_raises_a_problem(
    client: Client, db: Database
) -> None:
    response = await client.post("/_probe/heartbeats/then-fail", json={"token": "dropped"})
    assert_problem(response, 409, "conflict")
    assert await count_heartbeats(db) == 0


async def test_unexpected_error_is_a_500_problem_and_rolls_back(
    client: Client, db: Database
) -> None:
    response = await client.post("/_probe/heartbeats/then-crash", json={"token": "dropped"})
    body = assert_problem(response, 500, "internal-error")
    assert "a bug" not in response.text  # internals stay in the logs
    assert body["request_id"]
    assert await count_heartbeats(db) == 0


async def test_commit_failure_is_not_a_success(client: Client, db: Database) -> None:
    first = await client.post("/_probe/heartbeats", json={"token": "same"})
    assert first.status_code == 201
    # The unique violation surfaces at flush: a conflict, never a success or a 500.
    second = await client.post("/_probe/heartbeats", json={"token": "same"})
    body = assert_problem(second, 409, "conflict")
    assert "uq_job_heartbeats_token" in body["detail"]
    assert await count_heartbeats(db) == 1


async def test_every_response_carries_a_request_id(client: Client) -> None:
    ids = set()
    for path in ("/health/live", "/nowhere", "/schema/openapi.json"):
        response = await client.get(path)
        request_id = response.headers["x-request-id"]
        assert re.fullmatch(
            r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", request_id
        )
        ids.add(request_id)
    assert len(ids) == 3


async def test_a_sane_incoming_request_id_is_kept(client: Client) -> None:
    response = await client.get("/nowhere", headers={"x-request-id": "trace-42.a"})
    assert response.headers["x-request-id"] == "trace-42.a"
    assert response.json()["request_id"] == "trace-42.a"


async def test_a_hostile_incoming_request_id_is_replaced(client: Client) -> None:
    response = await client.get("/health/live", headers={"x-request-id": "a\tb" + "x" * 300})
    assert response.headers["x-request-id"] != "a\tb" + "x" * 300
    assert len(response.headers["x-request-id"]) == 36


async def test_openapi_31_schema_documents_problems(client: Client) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.1")
    ready = schema["paths"]["/health/ready"]["get"]["responses"]
    assert "503" in ready
    assert "application/problem+json" in ready["503"]["content"]


async def test_interactive_docs_page_is_served(client: Client) -> None:
    for path in ("/schema", "/schema/swagger"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "bpo API" in response.text


async def test_metrics_count_requests_by_route_template(client: Client) -> None:
    await client.get("/health/live")
    await client.get("/nowhere")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'bpo_http_requests_total{method="GET",route="/health/live",status="200"} 1.0' in text
    assert 'bpo_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert "bpo_http_request_duration_seconds_bucket" in text
    assert "bpo_db_pool_size" in text
