"""`/api/v1` against its own OpenAPI description, fuzzed by schemathesis: no 5xx, and every
response matches the documented status codes, content types and schemas."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_the_description_is_served_and_drawn(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    limits = spec["components"]["schemas"]["Post"]["properties"]["text"]
    assert limits["maxLength"] == 5000
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "POST /api/v1/analyze" in page.get_data(as_text=True)


def test_the_api_keeps_its_description(app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert ("POST", "/api/v1/analyze") in {(op.method.upper(), op.path) for op in operations}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        def keeps_its_description(case):
            case.call_and_validate(checks=CHECKS)

        keeps_its_description()
