"""The OpenAPI document (`/openapi.json`) against a live server, checked by schemathesis.

Every operation of the document is exercised with generated requests (the document's own
examples, boundary cases, random valid and invalid data); each response must have a documented
status, content type, headers and body, must never be a 5xx, and invalid requests must be
refused. (schemathesis leaves out the operation that serves the document itself;
`test_openapi_document_is_served` covers it.)
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import assume
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, start_server
from tests.fuzzing import cases, report, run_cases

PATHS = {
    "/getQuote.php",
    "/redis.php",
    "/getCategory.php",
    "/getSymbolList.php",
    "/healthz",
    "/metrics",
    "/openapi.json",
}

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

MAX_REQUEST_TARGET = 8000
"""A request line over 8190 bytes is refused before any parameter is read (a JSON 400, see
`test_long_request_line_gets_the_json_error`), so generated requests stay below that."""


@pytest.fixture(scope="module")
def openapi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A small-catalogue server with rate limits out of the way (no 429 while fuzzing)."""
    srv = start_server(tmp_path_factory.mktemp("openapi"), small_config(GENEROUS_LIMITS))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api_schema(openapi_server: Server) -> Any:
    """The document as the live server serves it, aimed at that server."""
    return schemathesis.openapi.from_url(f"{openapi_server.url}/openapi.json", timeout=10)


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_openapi_document_is_served(openapi_server: Server, api_schema: Any) -> None:
    with urllib.request.urlopen(f"{openapi_server.url}/openapi.json", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers.get_content_type() == "application/json"
        doc = json.loads(resp.read())
    assert doc["openapi"].startswith("3.1.")
    assert set(doc["paths"]) == PATHS
    assert all(set(item) == {"get"} for item in doc["paths"].values())
    api_schema.validate()  # against the OpenAPI 3.1 meta-schema


def _request_target(case: Any) -> str:
    """The path and query string the case sends, percent-encoded as on the wire."""
    sent = case.as_transport_kwargs()
    request = requests.Request(sent["method"], sent["url"], params=sent.get("params"))
    return str(request.prepare().path_url)


CASES_PER_PARAMETER = (25, 1000)
"""Cases of each operation and mode (valid, invalid data) per query parameter (an operation
without any counts as one): short run, full run (`TICKWIRE_FUZZ=full`)."""


@pytest.mark.fuzz
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("path", sorted(PATHS - {"/openapi.json"}))
def test_server_conforms_to_openapi(openapi_server: Server, api_schema: Any, path: str,
                                    mode: GenerationMode, http: requests.Session) -> None:
    """Generated requests of one operation (the document's examples, boundary values,
    random valid or invalid data): each answer has a documented status, content type,
    headers and body, never a 5xx, and invalid requests are refused."""
    operation = api_schema[path]["GET"]
    parameters = len(list(operation.iter_parameters()))
    if mode is GenerationMode.NEGATIVE and not parameters:
        pytest.skip("no parameter to make invalid (test_http_fuzz.py sends it anything)")
    count = cases(*CASES_PER_PARAMETER) * max(1, parameters)
    rss_before = openapi_server.rss_kib()

    def check(case: Any) -> None:
        assume(len(_request_target(case)) <= MAX_REQUEST_TARGET)
        case.call_and_validate(session=http, checks=CHECKS)

    ran = run_cases(operation.as_strategy(generation_mode=mode), count, check)
    growth = openapi_server.rss_kib() - rss_before
    report(f"openapi {path} {mode}", cases=ran, rss_growth_kib=growth)
    assert growth < 16 * 1024
    assert openapi_server.errors_logged() == []


def test_rate_limited_answer_conforms(api_schema: Any, strict_server: Server,
                                      http: requests.Session) -> None:
    """A 429 (default limits: getCategory.php 2 a second) has the documented body and header."""
    responses = [http.get(f"{strict_server.url}/getCategory.php") for _ in range(4)]
    assert responses[-1].status_code == 429
    assert int(responses[-1].headers["Retry-After"]) >= 1
    case = api_schema["/getCategory.php"]["GET"].Case()
    for resp in responses:
        case.validate_response(resp, checks=CHECKS)


def test_overlong_parameter_is_a_json_400(openapi_server: Server, http: requests.Session) -> None:
    resp = http.get(f"{openapi_server.url}/getQuote.php", params={"code": "a" * 2049})
    assert resp.status_code == 400
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json() == {"code": 400, "msg": "bad parameter code: longer than 2048 characters",
                           "data": None}


def test_long_request_line_gets_the_json_error(openapi_server: Server,
                                               http: requests.Session) -> None:
    code = "é" * 2000  # within the documented 2048 characters; 12 000 bytes percent-encoded
    resp = http.get(f"{openapi_server.url}/getQuote.php", params={"code": code})
    assert resp.status_code in (400, 404)
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json()["code"] == resp.status_code
