"""Schema-driven fuzzing set-up: the seed, the budget, and the app under attack.

The seed is fixed unless `TEST_EXPLORE=1` draws a fresh one; `SCHEMATHESIS_SEED` replays a
run (the seed is printed in pytest's header); `FUZZ_EXAMPLES` sets the examples per operation
(and the stateful scenarios) for a longer run.
"""

import os
import random
from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, Response
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.python import asgi
from schemathesis.specs.openapi import checks as builtin_checks
from sqlalchemy import Engine

from app.core.config import Settings
from app.main import create_app
from tests.conftest import EXPLORE, empty_all_tables
from tests.factories import API, SignedInUser, new_user, sign_in_admin
from tests.security.helpers import operations

# A plain run fuzzes with one fixed seed; TEST_EXPLORE=1 draws a fresh one (tests/conftest.py).
PINNED_SEED = 2835557656
SEED = int(
    os.environ.get("SCHEMATHESIS_SEED")
    or (random.SystemRandom().randrange(2**32) if EXPLORE else PINNED_SEED)
)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 25)
STATEFUL_SCENARIOS = max(10, EXAMPLES)

# Rejections of schema-valid input that are the API working as documented, not bugs: the
# fuzzer generates well-formed values that can never be live secrets or server-signed data.
# operationId -> (statuses, reason). Every other operation must accept valid input.
EXPECTED_REJECTIONS: dict[str, tuple[list[str], str]] = {
    "auth-password_reset": (["400"], "a generated token is never a live, signed reset token"),
    "auth-verify_email": (["400"], "a generated token is never a live, signed confirmation token"),
    "users-change_password": (["400"], "a generated current password never matches"),
    "users-update_me": (
        ["400", "422"],
        "a new email needs `current_password` (422 when absent); a generated one never matches",
    ),
    "auth-list_sessions": (["422"], "a generated cursor never carries the server's signature"),
    "users-list_users": (["422"], "a generated cursor never carries the server's signature"),
    "projects-list_projects": (["422"], "a generated cursor never carries the server's signature"),
    "labels-list_labels": (["422"], "a generated cursor never carries the server's signature"),
    "tasks-list_tasks": (["422"], "a generated cursor never carries the server's signature"),
    "tasks-list_project_tasks": (["422"], "a generated cursor never carries the signature"),
    "trash-list_trash": (["422"], "a generated cursor never carries the server's signature"),
    "notifications-list_notifications": (["422"], "a generated cursor is never signed"),
    "activity-project_activity": (["422"], "a generated cursor never carries the signature"),
    "activity-task_activity": (["422"], "a generated cursor never carries the signature"),
    "comments-list_comments": (["422"], "a generated cursor never carries the signature"),
    "sharing-accept_invitation": (["422"], "a generated token is never a live invitation's"),
    "sharing-decline_invitation": (["422"], "a generated token is never a live invitation's"),
    "tasks-bulk_tasks": (
        ["422"],
        "by design: `after_id` and `before_id` (even an explicit null) are documented as never"
        " both; JSON Schema in the document cannot say so",
    ),
    # The same rule on PATCH (the body is validated before the task is looked up).
    "tasks-update_task": (["422"], "by design: `after_id` and `before_id` are never both"),
}
# A generated `If-Match` is never the current ETag: 412 is the documented answer.
IF_MATCH_REJECTION = 412
# A generated id in a body or filter names no row of the caller's: the documented answer is a
# 422 `reference_not_found` (it was a 404, which the built-in check accepts, before 404s were
# kept for the URL's own resource).
REFERENCE_REJECTION = (422, "reference_not_found")


def fuzz_config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            # Only the links the API declares (app/core/openapi.py): inferred ones guess.
            "phases": {"stateful": {"inference": {"algorithms": []}}},
        }
    )


# Emails: the document says `format: email`; the server also refuses special-use domains
# (`.test`, `.invalid`, ...), which the generic generator picks. Generate deliverable-looking
# addresses instead, so valid-input checks exercise the routes rather than the email parser.
_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
schemathesis.openapi.format(
    "email",
    st.builds(
        "{}{}@{}.{}".format,
        _LABEL,
        st.sampled_from(["", ".x", "+tag", "_1", "-2"]),
        _LABEL,
        st.sampled_from(["com", "org", "net"]),
    ),
)


def _operation_id(case: Case) -> str:
    return str(case.operation.definition.raw.get("operationId", ""))


def _problem_code(response: Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def positive_data_acceptance(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """The built-in check, minus the rejections `EXPECTED_REJECTIONS` documents."""
    try:
        return builtin_checks.positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        statuses, _reason = EXPECTED_REJECTIONS.get(_operation_id(case), ([], ""))
        if str(response.status_code) in statuses:
            return None
        headers = {k.lower() for k in (case.headers or {})}
        if response.status_code == IF_MATCH_REJECTION and "if-match" in headers:
            return None
        if (response.status_code, _problem_code(response)) == REFERENCE_REJECTION:
            return None
        raise


CHECKS = {
    "excluded_checks": [builtin_checks.positive_data_acceptance],
    "additional_checks": [positive_data_acceptance],
}


_DOC_APP = create_app(Settings(ENVIRONMENT="test"))


def openapi_document() -> dict[str, Any]:
    """The document every test app serves (it does not depend on the database)."""
    return _DOC_APP.openapi()


def admin_operation_ids() -> list[str]:
    """Operations behind the admin gate (read from the route table, not listed by hand)."""
    return [op.operation_id for op in operations(_DOC_APP) if op.admin_only]


class FuzzTarget:
    """An app running its lifespan in schemathesis's event loop, and a signed-in caller.

    Requests go in-process through schemathesis's ASGI transport, which owns the lifespan;
    `close()` ends it before the test's tables are emptied.
    """

    def __init__(self, app: FastAPI, engine: Engine, *, admin: bool = False) -> None:
        self.app = app
        self.engine = engine
        self.admin = admin
        self.client = asgi.get_client(app).__enter__()
        self.user = self._sign_in()

    def reset(self) -> None:
        """Start again from an empty database (and a fresh start-up, which makes the admin)."""
        self.close()
        empty_all_tables(self.engine)
        self.client = asgi.get_client(self.app).__enter__()
        self.user = self._sign_in()

    def _sign_in(self) -> SignedInUser:
        if self.admin:
            return sign_in_admin(self.client)  # type: ignore[arg-type]
        return new_user(self.client)  # type: ignore[arg-type]

    @property
    def headers(self) -> dict[str, str]:
        return self.user.headers

    def call_kwargs(self) -> dict[str, Any]:
        return {"app": self.app, "headers": self.headers}

    def call_and_validate(self, case: Case) -> Response:
        response = case.call(**self.call_kwargs())
        try:
            case.validate_response(response, **CHECKS)  # type: ignore[arg-type]
        finally:
            self.after_call(case.method, case.path, response.status_code)
        return response

    def after_call(self, method: str, path: str, status: int) -> None:
        """Sign in again when the last call ended the caller's session or account."""
        ends_session = method.upper() == "DELETE" or path.endswith("/auth/logout")
        if 200 <= status < 300 and ends_session:
            probe = self.client.get(f"{API}/users/me", headers=self.headers)
            if probe.status_code == 401:
                self.user = self._sign_in()

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        asgi.shutdown_lifespans()
