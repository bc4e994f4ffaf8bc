"""Schema-driven tests: schemathesis reads /openapi.json and sends generated requests, valid
and invalid, to every operation of the app built by the factory, in process (WSGI), with a
mock model only (no network). With schemathesis' default checks: no 5xx, every status and
content type documented, every body (the error envelope included) and header matching its
schema, valid data accepted, invalid data rejected. SSE events are checked one by one.

Whether a secured operation ignores a missing key is tested directly in test_openapi.py:
schemathesis' ``ignored_auth`` probe cannot tell a key from an auth provider apart from a
generated one when driven from a plain test function (its pytest plugin is not used: it
does not run on pytest 9).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from tests.conftest import MASTER_KEY

# Per operation and mode: a fifth of the profile's (12 by default: about 15 s in all).
EXAMPLES = max(1, settings.default.max_examples // 5)


# Rules the document cannot state: which users and teams exist, the current time, the full
# URL syntax (documented as `format: uri` with an http(s) scheme), and a deployment change
# is validated merged with the stored entry.
MERGED_WITH_STORED = "PATCH /admin/deployments/{dep_id}"
NOT_IN_THE_DOCUMENT = {"user_id": "no such user", "team_id": "no such team",
                       "expires_at": "Must be in the future", "api_base": "Not a valid URL",
                       "auth.token_url": "Not a valid URL"}


def valid_data_is_accepted(ctx: Any, response: Any, case: Any) -> None:
    """schemathesis' positive_data_acceptance, minus NOT_IN_THE_DOCUMENT: a request the
    document calls valid is never a 400 for any other reason."""
    if case.operation.path.startswith("/v1/messages"):
        # Anthropic's request rules (content block shapes, roles in turn) are checked by the
        # translation and documented in prose; its 400s are in Anthropic's shape (no param).
        assert response.status_code != 500
        return
    if response.status_code == 400 and case.operation.label != MERGED_WITH_STORED:
        error = response.json()["error"]
        expected = NOT_IN_THE_DOCUMENT.get(error["param"])
        assert expected and expected in error["message"], error


class MasterKey:
    """schemathesis auth provider: the master key as a bearer token."""

    def get(self, case: Any, context: Any) -> str:
        return MASTER_KEY

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_matches_the_document(app: Flask, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    schema.auth()(MasterKey)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode, auth_storage=schema.auth))
        @settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            if mode is GenerationMode.POSITIVE:
                case.call_and_validate(excluded_checks=[ignored_auth, positive_data_acceptance],
                                       additional_checks=[valid_data_is_accepted])
            else:
                case.call_and_validate(excluded_checks=[ignored_auth])

        try:
            run()
        except Unsatisfiable:  # negative mode: no parameter or body to make invalid
            continue
        except Exception as exc:  # noqa: BLE001 - collected, reported together below
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
