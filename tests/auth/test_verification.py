"""Sign-up that reveals nothing, confirmed addresses and address changes, end to end."""

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.auth.dependencies import get_client
from app.auth.service import ClientInfo
from app.auth.verification import RESEND_ACCEPTED, SIGN_UP_ACCEPTED
from app.core.security import TokenType
from tests.auth.helpers import (
    auth_of,
    mails_to,
    make_token,
    outbox,
    reset_token_from,
    scalar,
    uuid_param,
    verification_token_from,
)
from tests.factories import (
    ADMIN_SETTINGS,
    API,
    DEFAULT_PASSWORD,
    SignedInUser,
    bearer,
    make_project,
    make_task,
    new_user,
    register,
    sign_in,
    sign_in_admin,
    unique_email,
)
from tests.helpers import ManualClock, assert_problem, together

REGISTER = f"{API}/auth/register"
VERIFY = f"{API}/auth/verify"
RESEND = f"{API}/auth/verify/resend"
ME = f"{API}/users/me"
ON = {"EMAIL_VERIFICATION_ENABLED": True}


@pytest.fixture
def verifying_app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app(**ON, **ADMIN_SETTINGS)


@pytest.fixture
def verifying(verifying_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(verifying_app) as client:
        yield client


@contextmanager
def counting_hashes(app: FastAPI) -> Iterator[list[str]]:
    """Every password hash and verification the app's hasher does inside the block."""
    hasher = auth_of(app).hasher
    context = hasher.context
    calls: list[str] = []

    class Spy:
        def __getattr__(self, name: str) -> Any:
            return getattr(context, name)

        def hash(self, *args: Any, **kwargs: Any) -> Any:
            calls.append("hash")
            return context.hash(*args, **kwargs)

        def verify(self, *args: Any, **kwargs: Any) -> Any:
            calls.append("verify")
            return context.verify(*args, **kwargs)

        def verify_and_update(self, *args: Any, **kwargs: Any) -> Any:
            calls.append("verify")
            return context.verify_and_update(*args, **kwargs)

    hasher.context = Spy()
    try:
        yield calls
    finally:
        hasher.context = context


def _addresses(app: FastAPI) -> None:
    """Let a request name its client address (`X-Test-Address`), so each has fresh budgets."""

    async def client_from_header(request: Request) -> ClientInfo:
        assert request.client is not None
        return ClientInfo(request.headers.get("x-test-address", request.client.host), None)

    app.dependency_overrides[get_client] = client_from_header


def _headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name != "x-request-id"}


def _signed_up(app: FastAPI, client: TestClient, email: str | None = None) -> SignedInUser:
    """A new account (verification on), signed in, its confirmation mail not used yet."""
    user = new_user(client, email=email)
    assert not client.get(ME, headers=user.headers).json()["email_verified"]
    return user


def _verify(client: TestClient, token: str) -> httpx.Response:
    return client.post(VERIFY, json={"token": token})


# --- sign-up reveals nothing --------------------------------------------------------------


@pytest.mark.parametrize("verification", [True, False], ids=["verification-on", "off"])
def test_sign_up_for_a_new_and_a_taken_address_is_indistinguishable(
    make_app: Callable[..., FastAPI], verification: bool
) -> None:
    """Same status, body and headers (but the request id), and the same work: one hash, one
    mail to the address, nothing else."""
    app = make_app(clock=ManualClock(), EMAIL_VERIFICATION_ENABLED=verification)
    _addresses(app)
    with TestClient(app) as client:
        taken = unique_email("taken")
        register(client, email=taken)
        _ = auth_of(app).hasher.dummy_hash  # made once per process, outside the measured work
        answers: list[httpx.Response] = []
        work: list[tuple[list[str], list[str]]] = []
        for index, email in enumerate((unique_email("fresh"), taken)):
            sent = len(outbox(app))
            with counting_hashes(app) as calls:
                answers.append(
                    client.post(
                        REGISTER,
                        json={"email": email, "password": "a-stranger-password"},
                        # Each from an address of its own: the same RateLimit state.
                        headers={"X-Test-Address": f"198.51.100.{index + 1}"},
                    )
                )
            work.append((calls, [mail.to for mail in outbox(app)[sent:]]))
    new, existing = answers
    assert (new.status_code, existing.status_code) == (202, 202)
    assert new.content == existing.content
    assert new.json() == {"detail": SIGN_UP_ACCEPTED}
    assert _headers(new) == _headers(existing)
    assert "ratelimit" in new.headers
    (new_hashes, new_mail), (existing_hashes, existing_mail) = work
    assert new_hashes == existing_hashes == ["hash"]
    assert len(new_mail) == len(existing_mail) == 1
    # What each mail says differs, which only the mailbox's owner reads.
    assert mails_to(app, taken)[-1].subject == "You already have an account"
    assert "token" not in mails_to(app, taken)[-1].body


def test_sign_up_for_a_taken_address_keeps_the_account_as_it_was(verifying: TestClient) -> None:
    owner = new_user(verifying)
    before = verifying.get(ME, headers=owner.headers).json()
    again = verifying.post(REGISTER, json={"email": owner.email, "password": "a-stranger-password"})
    assert again.status_code == 202
    assert verifying.get(ME, headers=owner.headers).json() == before
    refused = verifying.post(
        f"{API}/auth/token", data={"username": owner.email, "password": "a-stranger-password"}
    )
    assert_problem(refused, 401, "invalid_credentials")


def test_two_sign_ups_racing_for_one_address_make_one_account(
    verifying_app: FastAPI, verifying: TestClient, housekeeping_engine: Engine
) -> None:
    email = unique_email("race")
    body = {"email": email, "password": DEFAULT_PASSWORD}
    answers = together(*[lambda: verifying.post(REGISTER, json=body) for _ in range(2)])
    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    count = scalar(housekeeping_engine, 'SELECT count(*) FROM "user" WHERE email = :e', e=email)
    assert count == 1
    subjects = sorted(mail.subject for mail in mails_to(verifying_app, email))
    assert subjects == ["Confirm your email address", "You already have an account"]


def test_with_verification_off_a_new_account_is_confirmed_at_once_and_welcomed(
    app: FastAPI, client: TestClient
) -> None:
    user = new_user(client)
    assert client.get(ME, headers=user.headers).json()["email_verified"] is True
    (mail,) = mails_to(app, user.email)
    assert mail.subject == "Your account is ready"
    assert "token" not in mail.body


# --- confirming the address ---------------------------------------------------------------


def test_an_unconfirmed_account_signs_in_and_uses_its_own_data(
    verifying_app: FastAPI, verifying: TestClient
) -> None:
    user = _signed_up(verifying_app, verifying)
    project = make_project(verifying, user, name="Mine")
    task = make_task(verifying, user, project_id=project["id"])
    read = verifying.get(f"{API}/tasks/{task['id']}", headers=user.headers)
    assert read.status_code == 200
    assert verifying.get(f"{API}/auth/sessions", headers=user.headers).status_code == 200


def test_a_confirmation_token_works_once(verifying_app: FastAPI, verifying: TestClient) -> None:
    user = _signed_up(verifying_app, verifying)
    (mail,) = mails_to(verifying_app, user.email)
    assert mail.subject == "Confirm your email address"
    token = verification_token_from(mail)
    assert _verify(verifying, token).status_code == 204
    me = verifying.get(ME, headers=user.headers).json()
    assert (me["email_verified"], me["pending_email"]) == (True, None)
    assert_problem(_verify(verifying, token), 400, "invalid_verification_token")
    # Confirming signs nobody out.
    assert verifying.get(ME, headers=user.headers).status_code == 200


def test_concurrent_uses_of_one_confirmation_token_only_one_wins(
    verifying_app: FastAPI, verifying: TestClient
) -> None:
    user = _signed_up(verifying_app, verifying)
    token = verification_token_from(mails_to(verifying_app, user.email)[-1])
    answers = together(*[lambda: _verify(verifying, token) for _ in range(3)])
    assert sorted(answer.status_code for answer in answers) == [204, 400, 400]


def test_a_confirmation_token_works_only_for_its_address(
    verifying_app: FastAPI, verifying: TestClient
) -> None:
    """Bound to the address it was mailed to and the account's address state: one made for
    another address, or for the account before its address changed, confirms nothing."""
    user = _signed_up(verifying_app, verifying)
    token = verification_token_from(mails_to(verifying_app, user.email)[-1])
    claims = auth_of(verifying_app).tokens.decode(token, TokenType.VERIFY)
    elsewhere = make_token(
        verifying_app,
        subject=user.id,
        token_type=TokenType.VERIFY,
        extra={**claims.extra, "eml": unique_email("other")},
    )
    assert_problem(_verify(verifying, elsewhere), 400, "invalid_verification_token")
    someone_else = new_user(verifying)
    theirs = make_token(
        verifying_app, subject=someone_else.id, token_type=TokenType.VERIFY, extra=claims.extra
    )
    assert_problem(_verify(verifying, theirs), 400, "invalid_verification_token")
    # An admin moves the account to another address: the old address's token is dead.
    admin = sign_in_admin(verifying)
    moved = verifying.patch(
        f"{API}/users/{user.id}", json={"email": unique_email("moved")}, headers=admin.headers
    )
    assert moved.status_code == 200
    assert_problem(_verify(verifying, token), 400, "invalid_verification_token")
    assert moved.json()["email_verified"] is False


def test_an_expired_or_foreign_token_does_not_confirm(
    verifying_app: FastAPI, verifying: TestClient
) -> None:
    user = _signed_up(verifying_app, verifying)
    token = verification_token_from(mails_to(verifying_app, user.email)[-1])
    extra = auth_of(verifying_app).tokens.decode(token, TokenType.VERIFY).extra
    expired = make_token(
        verifying_app,
        subject=user.id,
        token_type=TokenType.VERIFY,
        lifetime=timedelta(minutes=60),
        issued_ago=timedelta(minutes=61),
        extra=extra,
    )
    assert_problem(_verify(verifying, expired), 400, "invalid_verification_token")
    # Another kind of token never stands in for a confirmation, nor the other way round.
    as_access = make_token(verifying_app, subject=user.id, token_type=TokenType.ACCESS)
    assert_problem(_verify(verifying, as_access), 400, "invalid_verification_token")
    assert_problem(_verify(verifying, user.access_token), 400, "invalid_verification_token")
    reset = verifying.post(
        f"{API}/auth/password-reset", json={"token": token, "new_password": "n" * 12}
    )
    assert_problem(reset, 400, "invalid_reset_token")
    assert not verifying.get(ME, headers=user.headers).json()["email_verified"]
    # The mailed one still works.
    assert _verify(verifying, token).status_code == 204


@pytest.mark.parametrize(
    "body",
    [{}, {"token": ""}, {"token": "x" * 5000}, {"token": 12}, {"token": "t", "email": "a@b.co"}],
    ids=["missing", "empty", "huge", "number", "extra"],
)
def test_verify_bad_input_is_a_422(client: TestClient, body: dict[str, Any]) -> None:
    assert_problem(client.post(VERIFY, json=body), 422, "validation_error")


def test_a_garbage_token_is_a_400(client: TestClient) -> None:
    assert_problem(_verify(client, "not-a-token"), 400, "invalid_verification_token")


# --- resending ----------------------------------------------------------------------------


def test_resend_answers_the_same_for_every_address_and_mails_only_an_unconfirmed_one(
    verifying_app: FastAPI, verifying: TestClient
) -> None:
    waiting = _signed_up(verifying_app, verifying)
    confirmed = _signed_up(verifying_app, verifying)
    assert _verify(
        verifying, verification_token_from(mails_to(verifying_app, confirmed.email)[-1])
    ).is_success
    sent = len(outbox(verifying_app))
    answers = [
        verifying.post(RESEND, json={"email": email})
        for email in (waiting.email, confirmed.email, unique_email("nobody"))
    ]
    assert {answer.status_code for answer in answers} == {202}
    assert {answer.content for answer in answers} == {answers[0].content}
    assert answers[0].json() == {"detail": RESEND_ACCEPTED}
    assert [mail.to for mail in outbox(verifying_app)[sent:]] == [waiting.email]
    fresh = verification_token_from(mails_to(verifying_app, waiting.email)[-1])
    assert _verify(verifying, fresh).status_code == 204


def test_resend_with_verification_off_mails_nothing(app: FastAPI, client: TestClient) -> None:
    user = new_user(client)
    sent = len(outbox(app))
    assert client.post(RESEND, json={"email": user.email}).status_code == 202
    assert len(outbox(app)) == sent


def test_resend_is_throttled_per_address_and_per_email(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(**ON, VERIFY_RESEND_MAX_PER_IP=4, VERIFY_RESEND_MAX_PER_EMAIL=2)
    _addresses(app)
    with TestClient(app) as client:
        email = unique_email("resend")
        statuses = [
            client.post(RESEND, json={"email": email}, headers={"X-Test-Address": "192.0.2.1"})
            for _ in range(3)
        ]
        assert [answer.status_code for answer in statuses] == [202, 202, 429]
        assert_problem(statuses[-1], 429, "rate_limited")
        # Another address may still ask for it (a stranger cannot block the owner) ...
        elsewhere = {"X-Test-Address": "192.0.2.2"}
        assert client.post(RESEND, json={"email": email}, headers=elsewhere).status_code == 202
        # ... and the first address's own budget is spent for every email.
        other = client.post(
            RESEND, json={"email": unique_email()}, headers={"X-Test-Address": "192.0.2.1"}
        )
        assert other.status_code == 202
        spent = client.post(
            RESEND, json={"email": unique_email()}, headers={"X-Test-Address": "192.0.2.1"}
        )
        assert_problem(spent, 429, "rate_limited")
        assert '"email-verification"' in spent.headers["ratelimit-policy"]


def test_resend_has_a_ceiling_per_email_from_every_address(
    make_app: Callable[..., FastAPI],
) -> None:
    """Spread over many addresses, requests for one email stop at the email-wide ceiling:
    nobody floods a mailbox with confirmation links."""
    app = make_app(**ON, VERIFY_RESEND_MAX_PER_EMAIL_ALL_ADDRESSES=3)
    _addresses(app)
    with TestClient(app) as client:
        email = unique_email("flood")
        answers = [
            client.post(RESEND, json={"email": email}, headers={"X-Test-Address": f"192.0.2.{n}"})
            for n in range(1, 5)
        ]
        assert [answer.status_code for answer in answers] == [202, 202, 202, 429]
        assert_problem(answers[-1], 429, "rate_limited")
        # Other emails are untouched.
        fresh = {"email": unique_email()}
        assert client.post(RESEND, json=fresh, headers={"X-Test-Address": "192.0.2.9"}).is_success


@pytest.mark.parametrize(
    "body", [{}, {"email": "not-an-email"}, {"email": "a@example.com", "x": 1}]
)
def test_resend_bad_input_is_a_422(client: TestClient, body: dict[str, Any]) -> None:
    assert_problem(client.post(RESEND, json=body), 422, "validation_error")


# --- changing the address -----------------------------------------------------------------


def _confirmed(app: FastAPI, client: TestClient) -> SignedInUser:
    user = _signed_up(app, client)
    assert _verify(client, verification_token_from(mails_to(app, user.email)[-1])).is_success
    return user


def test_a_new_email_takes_effect_only_once_confirmed(
    verifying_app: FastAPI, verifying: TestClient
) -> None:
    user = _confirmed(verifying_app, verifying)
    other_session = sign_in(verifying, user.email)
    recovery = verifying.post(f"{API}/auth/password-recovery", json={"email": user.email})
    assert recovery.status_code == 202
    reset_token = reset_token_from(mails_to(verifying_app, user.email)[-1])
    new_email = unique_email("moved")

    asked = verifying.patch(
        ME, json={"email": new_email, "current_password": user.password}, headers=user.headers
    )
    assert asked.status_code == 200, asked.text
    assert (asked.json()["email"], asked.json()["pending_email"]) == (user.email, new_email)
    assert asked.json()["email_verified"] is True
    # The old address is told; the new one gets the link; nobody is signed out yet.
    notice = mails_to(verifying_app, user.email)[-1]
    assert notice.subject == "Your account's email address is changing"
    assert new_email in notice.body
    assert "token" not in notice.body
    token = verification_token_from(mails_to(verifying_app, new_email)[-1])
    assert verifying.get(ME, headers=bearer(other_session["access_token"])).status_code == 200
    sign_in(verifying, user.email)  # still the sign-in name

    assert _verify(verifying, token).status_code == 204
    me = verifying.get(ME, headers=user.headers)
    assert me.status_code == 200  # the session that asked stays signed in
    assert (me.json()["email"], me.json()["pending_email"]) == (new_email, None)
    assert me.json()["email_verified"] is True
    assert_problem(verifying.get(ME, headers=bearer(other_session["access_token"])), 401)
    sign_in(verifying, new_email)
    old = verifying.post(
        f"{API}/auth/token", data={"username": user.email, "password": user.password}
    )
    assert_problem(old, 401, "invalid_credentials")
    # The reset token mailed to the old address died with it, and the link works once.
    reset = verifying.post(
        f"{API}/auth/password-reset", json={"token": reset_token, "new_password": "n" * 12}
    )
    assert_problem(reset, 400, "invalid_reset_token")
    assert_problem(_verify(verifying, token), 400, "invalid_verification_token")


def test_asking_again_kills_the_earlier_link_and_the_current_address_cancels(
    verifying_app: FastAPI, verifying: TestClient
) -> None:
    user = _confirmed(verifying_app, verifying)
    first, second = unique_email("first"), unique_email("second")
    for email in (first, second):
        asked = verifying.patch(
            ME, json={"email": email, "current_password": user.password}, headers=user.headers
        )
        assert asked.json()["pending_email"] == email
    first_token = verification_token_from(mails_to(verifying_app, first)[-1])
    assert_problem(_verify(verifying, first_token), 400, "invalid_verification_token")
    second_token = verification_token_from(mails_to(verifying_app, second)[-1])
    cancelled = verifying.patch(ME, json={"email": user.email}, headers=user.headers)
    assert cancelled.json()["pending_email"] is None
    assert_problem(_verify(verifying, second_token), 400, "invalid_verification_token")
    assert verifying.get(ME, headers=user.headers).json()["email"] == user.email


def test_a_new_email_of_another_account_is_not_revealed_when_asked(
    verifying_app: FastAPI, verifying: TestClient
) -> None:
    user = _confirmed(verifying_app, verifying)
    other = _confirmed(verifying_app, verifying)
    free = unique_email("free")
    answers = [
        verifying.patch(
            ME, json={"email": email, "current_password": user.password}, headers=user.headers
        )
        for email in (other.email, free)
    ]
    assert [answer.status_code for answer in answers] == [200, 200]
    # The owner of the taken address gets a notice, no link.
    notice = mails_to(verifying_app, other.email)[-1]
    assert notice.subject == "About your email address"
    assert "token" not in notice.body
    assert verification_token_from(mails_to(verifying_app, free)[-1])


def test_an_address_taken_before_the_link_is_used_is_a_409(
    verifying_app: FastAPI, verifying: TestClient
) -> None:
    user = _confirmed(verifying_app, verifying)
    wanted = unique_email("wanted")
    asked = verifying.patch(
        ME, json={"email": wanted, "current_password": user.password}, headers=user.headers
    )
    assert asked.status_code == 200
    token = verification_token_from(mails_to(verifying_app, wanted)[-1])
    register(verifying, email=wanted)
    assert_problem(_verify(verifying, token), 409, "email_taken")
    me = verifying.get(ME, headers=user.headers).json()
    assert (me["email"], me["pending_email"]) == (user.email, wanted)


def test_with_verification_off_a_new_email_is_immediate_and_the_old_address_told(
    app: FastAPI, client: TestClient
) -> None:
    user = new_user(client)
    other_session = sign_in(client, user.email)
    new_email = unique_email("moved")
    changed = client.patch(
        ME, json={"email": new_email, "current_password": user.password}, headers=user.headers
    )
    assert changed.status_code == 200
    body = changed.json()
    assert (body["email"], body["pending_email"], body["email_verified"]) == (
        new_email,
        None,
        True,
    )
    notice = mails_to(app, user.email)[-1]
    assert notice.subject == "Your account's email address is changing"
    assert new_email in notice.body
    assert_problem(client.get(ME, headers=bearer(other_session["access_token"])), 401)
    assert client.get(ME, headers=user.headers).status_code == 200


# --- the admin API ------------------------------------------------------------------------


def test_admin_sees_and_sets_the_confirmed_state(
    verifying_app: FastAPI, verifying: TestClient, housekeeping_engine: Engine
) -> None:
    admin = sign_in_admin(verifying)
    assert verifying.get(ME, headers=admin.headers).json()["email_verified"] is True
    user = _signed_up(verifying_app, verifying)
    url = f"{API}/users/{user.id}"
    assert verifying.get(url, headers=admin.headers).json()["email_verified"] is False
    listed = verifying.get(f"{API}/users", headers=admin.headers).json()["items"]
    assert {row["id"]: row["email_verified"] for row in listed}[user.id] is False

    marked = verifying.patch(url, json={"email_verified": True}, headers=admin.headers)
    assert marked.json()["email_verified"] is True
    at = scalar(
        housekeeping_engine,
        'SELECT email_verified_at FROM "user" WHERE id = :id',
        id=uuid_param(housekeeping_engine, user.id),
    )
    assert at is not None
    # The link mailed at sign-up is dead: the state it was made for is gone.
    token = verification_token_from(mails_to(verifying_app, user.email)[-1])
    assert_problem(_verify(verifying, token), 400, "invalid_verification_token")
    cleared = verifying.patch(url, json={"email_verified": False}, headers=admin.headers)
    assert cleared.json()["email_verified"] is False
    vouched = verifying.patch(
        url, json={"email": unique_email("vouched"), "email_verified": True}, headers=admin.headers
    )
    assert vouched.json()["email_verified"] is True
    assert_problem(verifying.patch(url, json={"email_verified": "yes"}, headers=admin.headers), 422)


def test_admin_made_accounts_are_unconfirmed_while_verification_is_on(
    verifying: TestClient,
) -> None:
    admin = sign_in_admin(verifying)
    made = verifying.post(
        f"{API}/users",
        json={"email": unique_email("staff"), "password": "staff-password"},
        headers=admin.headers,
    )
    assert made.status_code == 201
    assert made.json()["email_verified"] is False


def test_an_unknown_user_id_in_a_token_confirms_nothing(
    verifying_app: FastAPI, verifying: TestClient
) -> None:
    token = make_token(
        verifying_app,
        subject=str(uuid.uuid4()),
        token_type=TokenType.VERIFY,
        extra={"eml": "a@example.com", "afp": "0" * 32},
    )
    assert_problem(_verify(verifying, token), 400, "invalid_verification_token")


def test_a_password_reset_confirms_the_address_it_was_mailed_to(
    verifying_app: FastAPI, verifying: TestClient
) -> None:
    """The owner of an address someone else signed up with takes the account over the way
    the sign-up mail says: by resetting the password; that proves the address too."""
    squatted = unique_email("owner")
    register(verifying, email=squatted, password="the-squatters-password")
    told = verifying.post(REGISTER, json={"email": squatted, "password": DEFAULT_PASSWORD})
    assert told.status_code == 202
    assert mails_to(verifying_app, squatted)[-1].subject == "You already have an account"
    asked = verifying.post(f"{API}/auth/password-recovery", json={"email": squatted})
    assert asked.status_code == 202
    token = reset_token_from(mails_to(verifying_app, squatted)[-1])
    reset = verifying.post(
        f"{API}/auth/password-reset", json={"token": token, "new_password": DEFAULT_PASSWORD}
    )
    assert reset.status_code == 204
    me = verifying.get(ME, headers=bearer(sign_in(verifying, squatted)["access_token"])).json()
    assert me["email_verified"] is True
