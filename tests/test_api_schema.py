"""Schemathesis against the running API's own OpenAPI document.

Every operation in ``/openapi.json`` gets generated requests (valid and
invalid); no answer may be a server error (5xx), and every answer must match
the schema the document gives for its status code. Requests are both valid
(positive) and invalid (negative) ones. Example counts are kept small so the file runs in well under a
minute; a failure names the operation and the reproducing request.
"""

from __future__ import annotations

import base64

import httpx
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from ledger import gs1

EXAMPLES_PER_OPERATION = 10
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def test_no_operation_answers_5xx_or_off_schema(api):
    url, cast = api["url"], api["cast"]
    # Some state so reads meet real rows, not only empty tables.
    founding = [{"body": base64.b64encode(s.body).decode(), "signature": base64.b64encode(s.signature).decode()}
                for s in cast.founding_events() + [cast.issue(gs1.new_serial()) for _ in range(3)]]
    assert httpx.post(f"{url}/v1/events", json={"events": founding}, timeout=60).status_code == 200

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    operations = 0
    statuses: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @hyp_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
        @given(case=st.one_of(operation.as_strategy(), operation.as_strategy(GenerationMode.NEGATIVE)))
        def check(case):
            response = case.call_and_validate(base_url=url, checks=CHECKS, timeout=30)
            statuses.setdefault(f"{operation.method.upper()} {operation.path}", set()).add(response.status_code)  # noqa: B023 - called within this iteration

        try:
            check()
        except Exception as exc:  # noqa: BLE001 -- collect every operation's failure, then fail once
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:3000])
    print("\n".join(f"{op}: {sorted(codes)}" for op, codes in sorted(statuses.items())))
    assert operations >= 10, "the OpenAPI document lists too few operations"
    assert not failures, "\n\n".join(failures)
