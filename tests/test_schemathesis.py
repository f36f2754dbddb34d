"""The API against its own OpenAPI document: schemathesis generates requests for every operation
(the pipeline's /admin/commit included) and checks that none answers 500 and every answer
matches the document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from api import create_app

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES = 5  # per operation: the suite stays fast; raise locally for a deeper run


@pytest.fixture
def api_schema(node):
    app = create_app(node=node)
    app.state.node = node  # the lifespan would set it; schemathesis calls the app directly
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)


def _exercise(operation) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(checks=CHECKS)

    run()


def test_every_operation_answers_as_documented(api_schema):
    failures = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        try:
            _exercise(operation)
        except Exception as exc:  # collect every operation's first failure, then report all
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:600]}"
    assert failures == {}
