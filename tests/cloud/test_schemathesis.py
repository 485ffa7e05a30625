"""Schemathesis over the API's own OpenAPI schema: generated requests, never a 5xx.

Every operation gets generated paths, queries and bodies, valid and not, on
SQLite and on PostgreSQL (where NUL bytes and 64-bit overflows reach a real
database). The tenant holds a store, zones, a campaign, an offer and an
opted-in install, so some generated requests get past the 404s; the app's own
endpoints get the app's token, everything else an admin key, and a second run
sends no credentials at all. Hypothesis drives each operation directly (the
schemathesis pytest plugin's lazy loading does not run on pytest 9).
"""

from __future__ import annotations

import contextlib
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation

from .conftest import Api
from .test_app_api import opt_in

EXAMPLES = 20
#: refusing a request without credentials does not depend on the rest of it
EXAMPLES_WITHOUT_CREDENTIALS = 3
OPEN = {"/healthz", "/readyz", "/metrics", "/v1/apps/{tenant}/installs"}


def server_errors(api: Api, authorization: dict[str, str] | None) -> dict[str, list[str]]:
    """Each operation's generated requests that got a 5xx (or, without credentials, a
    protected operation that did not answer 401)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) > 30  # the schema loaded whole
    failures: dict[str, list[str]] = {}
    for operation in operations:
        found = fuzz(operation, authorization)
        if found:
            failures[f"{operation.method.upper()} {operation.path}"] = found
    return failures


def fuzz(
    operation: APIOperation[Any, Any, Any, Any], authorization: dict[str, str] | None
) -> list[str]:
    found: list[str] = []
    headers: dict[str, str] = {}
    if authorization is not None:
        headers["Authorization"] = authorization[
            "app" if operation.path.startswith("/v1/app/") else "key"
        ]
    protected = authorization is None and operation.path not in OPEN

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES if authorization else EXAMPLES_WITHOUT_CREDENTIALS,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case[Any]) -> None:
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # the app raised: what a server would answer with a 500
            found.append(f"{exc.__class__.__name__}: {exc!s:.300} on {case.as_curl_command()}")
            return
        if response.status_code >= 500:
            found.append(
                f"{response.status_code} {case.formatted_path} query={case.query} "
                f"body={case.body!r:.200}: {response.text[:200]}"
            )
        elif protected and response.status_code != 401:
            found.append(f"{response.status_code} without credentials: {case.formatted_path}")

    with contextlib.suppress(Unsatisfiable):  # parameters that admit no generated example
        run()
    return found


def credentials(api: Api) -> dict[str, str]:
    created = opt_in(api)
    return {"key": f"Bearer {api.keys['admin']}", "app": f"Bearer {created['app_token']}"}


def test_generated_requests_never_get_a_server_error(api: Api, store: dict[str, Any]) -> None:
    assert server_errors(api, credentials(api)) == {}


def test_without_credentials_every_protected_operation_answers_401(
    api: Api, store: dict[str, Any]
) -> None:
    assert server_errors(api, None) == {}
