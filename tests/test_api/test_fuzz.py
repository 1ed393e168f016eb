"""Issue 10: a property-based fuzz of the whole HTTP API, from its own OpenAPI document.

schemathesis generates requests for every operation, both ones that fit the
document and ones that break it, sends them to a real `stageflow api` process on
each store, and fails on any 5xx, any answer the document does not describe
(status, content type, headers, body), an `Allow` that disagrees with it, and any
request slower than REQUEST_BOUND_SECONDS. It is bounded: MAX_EXAMPLES per
operation and mode, and pytest-timeout over all of it.

(schemathesis' pytest plug-in reads a private attribute pytest 9 dropped, so the
operations' hypothesis strategies are driven here directly.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.live_api import running_api
from tests.support.redis_server import RedisServer

MAX_EXAMPLES = 40
REQUEST_BOUND_SECONDS = 5.0  # a bound on a hang, not a measure of speed (bench/ measures)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    allow_header_conformance,
]


@pytest.fixture(scope="module", params=["memory", "redis"])
def live_api(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[httpx.Client]:
    redis_url = redis_server.url if request.param == "redis" else None
    with running_api(redis_url) as client:
        yield client


def operations(client: httpx.Client) -> list[APIOperation[Any, Any, Any, Any]]:
    schema = schemathesis.openapi.from_url(f"{client.base_url}/openapi.json")
    found = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # the document itself is valid
        found.append(result.ok())
    # A stream lasts as long as its run; the fuzzer's reads must end on their own.
    return [operation for operation in found if not operation.path.endswith("/events")]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_hurts_the_service(live_api: httpx.Client, mode: GenerationMode) -> None:
    for operation in operations(live_api):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def request_it(case: Case[Any]) -> None:
            response = case.call(timeout=REQUEST_BOUND_SECONDS * 4)
            case.validate_response(response, checks=CHECKS)
            elapsed = response.elapsed  # seconds
            assert elapsed < REQUEST_BOUND_SECONDS, f"{case.method} {case.path}: {elapsed:.1f}s"

        try:
            request_it()
        except Unsatisfiable:
            # An operation with no input (GET /healthz) has nothing to break.
            assert mode is GenerationMode.NEGATIVE, operation.label
