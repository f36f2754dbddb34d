"""The API against its own OpenAPI document: schemathesis generates requests for every operation
(the pipeline's /admin/commit included) and checks that none answers 500 and every answer
matches the document; then it follows the document's links (an ingested event read and forgotten
by its id, a made key revoked, a forget previewed and confirmed) in stateful sequences."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from api import create_app
from api.openapi import OPERATION_IDS
from memorose_dagster.node.node import Node
from tests.conftest import make_settings

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


ADMIN = "admin-key-0123456789abcdef"
ADMIN_PATHS = ("/api/v1/admin/", "/api/v1/cluster/")
# Operations joined by the document's links, and those a run must have answered 2xx through
# them. Three runs, not one: together, schemathesis would start sequences only from POST
# /admin/keys (it reads user_id in an event as a reference to a resource nothing makes), and
# the few sequences through a forget's preview would rarely reach its confirmation.
SEQUENCES = {
    "events": (["ingestEvent", "ingestBatch", "getEvent", "forgetEvent", "listMemories"],
               {"GET /api/v1/events/{event_id}", "DELETE /api/v1/events/{event_id}"}),
    "forget": (["ingestEvent", "previewForget", "confirmForget"],
               {"POST /api/v1/forget/confirm"}),
    "keys": (["createKey", "revokeKey"], {"DELETE /api/v1/admin/keys/{key_id}"}),
}


@pytest.fixture
def keyed_app(tmp_path, embedder):
    """A node with an admin key, so keys can be made (one per sequence, for the data routes)."""
    node = Node(make_settings(tmp_path / "keyed", admin_key=ADMIN), embedder=embedder)
    node.wait_ready()
    app = create_app(node=node)
    app.state.node = node
    yield app
    node.close()


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_linked_operations_answer_as_documented_in_sequence(keyed_app, sequence):
    operation_ids, reached = SEQUENCES[sequence]
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", keyed_app)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE])  # sequences, not fuzzing
    schema = schema.include(operation_id=operation_ids)
    assert set(operation_ids) <= set(OPERATION_IDS.values())
    answered: Counter[tuple[str, int]] = Counter()

    admin = TestClient(keyed_app, headers={"Authorization": f"Bearer {ADMIN}"})
    tenants = itertools.count()

    class Workflow(schema.as_state_machine()):
        def setup(self):
            """Each sequence in a tenant of its own: what one left behind (a user, an event)
            would change what the same steps answer in the next, and Hypothesis, replaying
            them, would find its rules inconsistent."""
            super().setup()
            made = admin.post("/api/v1/admin/keys", json={"tenant": f"t{next(tenants)}"})
            self.key = made.json()["secret"]

        def get_call_kwargs(self, case):
            key = ADMIN if case.path.startswith(ADMIN_PATHS) else self.key
            return {"headers": {"Authorization": f"Bearer {key}"}}

        def after_call(self, response, case):
            super().after_call(response, case)
            answered[(f"{case.method} {case.path}", response.status_code)] += 1

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None,
                                   recorder=self.recorder)

    Workflow.run(settings=settings(max_examples=25, stateful_step_count=6, deadline=None,
                                   database=None, phases=[Phase.generate],
                                   suppress_health_check=list(HealthCheck)))
    assert reached <= {op for op, status in answered if status < 300}, answered
