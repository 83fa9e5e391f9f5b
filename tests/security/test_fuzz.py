"""Schema-driven fuzzing with schemathesis, against the app's own OpenAPI document.

Every documented operation gets `FUZZ_EXAMPLES` generated requests (valid and invalid) as a
signed-in regular user, admin-only operations also as an admin, and a stateful run chains
calls along the document's OpenAPI links (app/core/openapi.py) so that ids created by one call
are used by the next. The checks: no 5xx, status codes, content types and bodies as
documented, invalid input refused, valid input accepted (see `fuzzing.EXPECTED_REJECTIONS`),
and a protected operation refused without or with a bad token (`ignored_auth`).

Exclusions: none. Replay: the seed is in pytest's header; see tests/security/fuzzing.py.
"""

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, seed, settings
from schemathesis import Case

from tests.security import fuzzing

schema = schemathesis.openapi.from_dict(fuzzing.openapi_document(), config=fuzzing.fuzz_config())
admin_schema = schema.include(operation_id=fuzzing.admin_operation_ids())

pytestmark = pytest.mark.fuzz

FIXTURE_SETTINGS = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)


@schema.parametrize()
@FIXTURE_SETTINGS
def test_every_operation_as_a_user(case: Case, fuzz_user: fuzzing.FuzzTarget) -> None:
    fuzz_user.call_and_validate(case)


@admin_schema.parametrize()
@FIXTURE_SETTINGS
def test_admin_operations_as_an_admin(case: Case, fuzz_admin: fuzzing.FuzzTarget) -> None:
    fuzz_admin.call_and_validate(case)


def test_stateful_links(fuzz_user: fuzzing.FuzzTarget) -> None:
    """Random walks along the OpenAPI links, as a regular user."""
    _run_state_machine(fuzz_user)


def test_stateful_links_as_an_admin(fuzz_admin: fuzzing.FuzzTarget) -> None:
    """Random walks along the OpenAPI links, as an admin (the user-management links)."""
    _run_state_machine(fuzz_admin)


def _run_state_machine(target: fuzzing.FuzzTarget) -> None:
    base: Any = schema.as_state_machine()

    class Machine(base):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            # Each scenario starts from the same state, so a replayed scenario replays.
            target.reset()

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return target.call_kwargs()

        def after_call(self, response: Any, case: Case) -> None:
            super().after_call(response, case)
            target.after_call(case.method, case.path, response.status_code)

        def validate_response(self, response: Any, case: Case, **kwargs: Any) -> None:
            case.validate_response(
                response,
                transport_kwargs=kwargs,
                recorder=getattr(self, "recorder", None),
                **fuzzing.CHECKS,
            )

    seed(fuzzing.SEED)(Machine)
    Machine.run(
        settings=settings(
            max_examples=fuzzing.STATEFUL_SCENARIOS,
            stateful_step_count=6,
            deadline=None,
            database=None,
            # No shrinking: the app's state outlives a scenario, so a replayed prefix can take
            # another path and Hypothesis would report that, not the failure.
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
