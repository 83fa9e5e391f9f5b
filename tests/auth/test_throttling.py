"""Sign-in, sign-up, recovery and password-change throttles, on the database and on Redis.

No test waits a window out: on the database the app reads a clock the test moves; Redis
keeps its own time (key expiry), so there the test ends a window by expiring its keys.
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import redis
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from app.auth.dependencies import get_client
from app.auth.service import ClientInfo
from app.core.config import Settings
from tests.auth.helpers import outbox, random_ip
from tests.factories import API, DEFAULT_PASSWORD, new_user, register, unique_email
from tests.helpers import ManualClock, assert_problem, require_redis, together

WINDOW = 60  # seconds: never ends by itself during a test; tests end it (`end_window`)


@dataclass
class Throttled:
    """Builds clients for one storage; every key this test creates carries `ip` or an email."""

    make_app: Callable[..., FastAPI]
    storage: dict[str, Any]
    redis_connection: redis.Redis | None = None
    clock: ManualClock = field(default_factory=ManualClock)
    ip: str = field(default_factory=random_ip)
    emails: list[str] = field(default_factory=list)

    settings: dict[str, Any] = field(default_factory=dict)

    def app(self, **settings: Any) -> FastAPI:
        self.settings = {**self.storage, **settings}
        return self._make(self.settings)

    def _make(self, settings: dict[str, Any]) -> FastAPI:
        # Redis counts in its own time: the app's clock must then be the real one.
        clock = None if self.redis_connection is not None else self.clock
        return self.make_app(clock=clock, **settings)

    def elsewhere(self) -> AbstractContextManager[TestClient]:
        """A client at another address, in another process (app) with the same settings.

        Not a second client of the same app: its lifespan would replace the app's state.
        """
        return self.client(self._make(self.settings), ip=random_ip())

    @contextmanager
    def client(self, app: FastAPI, ip: str | None = None) -> Iterator[TestClient]:
        with TestClient(app, client=(ip or self.ip, 50000)) as client:
            limiter = app.state.auth.limiter
            try:
                yield client
            finally:
                # The lifespan does not close the limiter (see the report): release the Redis
                # pool on the app's own loop, or its sockets leak into ResourceWarnings.
                assert client.portal is not None
                client.portal.call(limiter.aclose)

    def email(self) -> str:
        email = unique_email("throttle")
        self.emails.append(email)
        return email

    def end_window(self) -> None:
        """Make every window this test opened end now."""
        if self.redis_connection is None:
            self.clock.advance(WINDOW + 1)
        else:
            self.forget_keys()

    def forget_keys(self) -> None:
        """Expire this test's Redis keys (only these: another run may share the database)."""
        assert self.redis_connection is not None
        markers = [self.ip, *self.emails]
        keys = [
            key
            for key in self.redis_connection.scan_iter(match="tasks-api*")
            if any(marker in key.decode() for marker in markers)
        ]
        if keys:
            self.redis_connection.delete(*keys)


@pytest.fixture(params=["database", "redis"])
def throttled(
    request: pytest.FixtureRequest, make_app: Callable[..., FastAPI]
) -> Iterator[Throttled]:
    if request.param == "database":
        yield Throttled(make_app, {})
        return
    url = require_redis()
    connection = redis.Redis.from_url(url)
    throttled = Throttled(make_app, {"RATE_LIMIT_STORAGE_URL": url}, redis_connection=connection)
    try:
        yield throttled
    finally:
        throttled.forget_keys()
        connection.close()
        connection.connection_pool.disconnect()


def _token(client: TestClient, email: str, password: str) -> Any:
    return client.post(f"{API}/auth/token", data={"username": email, "password": password})


def test_account_throttle_answers_429_then_lets_in_after_the_window(
    throttled: Throttled,
) -> None:
    app = throttled.app(LOGIN_MAX_FAILURES_PER_ACCOUNT=3, LOGIN_FAILURE_WINDOW_SECONDS=WINDOW)
    with throttled.client(app) as client:
        email = throttled.email()
        register(client, email=email)
        for _ in range(3):
            assert_problem(_token(client, email, "wrong-password"), 401, "invalid_credentials")
        # Past the threshold even the right password is refused, with a Retry-After.
        blocked = _token(client, email, DEFAULT_PASSWORD)
        assert_problem(blocked, 429, "rate_limited")
        assert 1 <= int(blocked.headers["retry-after"]) <= WINDOW + 1
        # The strict counter is the account's at this address: the owner elsewhere gets in.
        with throttled.elsewhere() as elsewhere:
            assert _token(elsewhere, email, DEFAULT_PASSWORD).status_code == 200

        # Inside the window it stays shut; once the window is over the right password works.
        assert_problem(_token(client, email, DEFAULT_PASSWORD), 429, "rate_limited")
        throttled.end_window()
        assert _token(client, email, DEFAULT_PASSWORD).status_code == 200


def test_address_throttle_counts_failures_across_accounts(throttled: Throttled) -> None:
    app = throttled.app(LOGIN_MAX_FAILURES_PER_IP=3, LOGIN_FAILURE_WINDOW_SECONDS=WINDOW)
    with throttled.client(app) as client:
        email = throttled.email()
        register(client, email=email)
        for _ in range(3):
            assert _token(client, throttled.email(), "wrong-password").status_code == 401
        blocked = _token(client, email, DEFAULT_PASSWORD)
        assert_problem(blocked, 429, "rate_limited")
        assert int(blocked.headers["retry-after"]) >= 1
        with throttled.elsewhere() as other_address:
            assert _token(other_address, email, DEFAULT_PASSWORD).status_code == 200


def test_a_successful_sign_in_resets_the_account_counter(throttled: Throttled) -> None:
    app = throttled.app(LOGIN_MAX_FAILURES_PER_ACCOUNT=3)
    with throttled.client(app) as client:
        email = throttled.email()
        register(client, email=email)
        for _ in range(2):
            assert _token(client, email, "wrong-password").status_code == 401
        assert _token(client, email, DEFAULT_PASSWORD).status_code == 200
        for _ in range(2):
            assert _token(client, email, "wrong-password").status_code == 401
        assert _token(client, email, DEFAULT_PASSWORD).status_code == 200


def test_unknown_accounts_are_throttled_like_known_ones(throttled: Throttled) -> None:
    app = throttled.app(LOGIN_MAX_FAILURES_PER_ACCOUNT=2)
    with throttled.client(app) as client:
        known = throttled.email()
        register(client, email=known)
        unknown = throttled.email()
        answers = []
        for email in (known, unknown):
            answers.append([_token(client, email, "wrong-password").status_code for _ in range(3)])
        assert answers == [[401, 401, 429], [401, 401, 429]]


def test_counters_are_shared_by_every_process(throttled: Throttled) -> None:
    settings = {"LOGIN_MAX_FAILURES_PER_ACCOUNT": 2}
    first_app, second_app = throttled.app(**settings), throttled.app(**settings)
    with throttled.client(first_app) as first, throttled.client(second_app) as second:
        email = throttled.email()
        register(first, email=email)
        assert _token(first, email, "wrong-password").status_code == 401
        assert _token(second, email, "wrong-password").status_code == 401
        assert_problem(_token(first, email, DEFAULT_PASSWORD), 429, "rate_limited")
        assert_problem(_token(second, email, DEFAULT_PASSWORD), 429, "rate_limited")


def test_registration_is_throttled_per_address(throttled: Throttled) -> None:
    app = throttled.app(REGISTER_MAX_PER_IP=2, REGISTER_WINDOW_SECONDS=WINDOW)
    with throttled.client(app) as client:
        for _ in range(2):
            register(client, email=throttled.email())
        body = {"email": throttled.email(), "password": DEFAULT_PASSWORD}
        blocked = client.post(f"{API}/auth/register", json=body)
        assert_problem(blocked, 429, "rate_limited")
        assert "retry-after" in blocked.headers
        with throttled.elsewhere() as other_address:
            assert other_address.post(f"{API}/auth/register", json=body).status_code == 202


def test_sign_ups_naming_one_email_are_limited_from_every_address(throttled: Throttled) -> None:
    """Each sign-up mails its address, so a mailbox cannot be flooded from many addresses;
    the budget counts every sign-up alike, so it tells nothing about the address either."""
    app = throttled.app(REGISTER_MAX_PER_EMAIL=2, REGISTER_WINDOW_SECONDS=WINDOW)
    with throttled.client(app) as client:
        email = throttled.email()
        body = {"email": email, "password": DEFAULT_PASSWORD}
        sent_before = len(outbox(app))
        assert client.post(f"{API}/auth/register", json=body).status_code == 202  # new
        with throttled.elsewhere() as other_address:
            # The same email (now an account) from another address spends the same budget.
            assert other_address.post(f"{API}/auth/register", json=body).status_code == 202
            third = other_address.post(f"{API}/auth/register", json=body)
            assert_problem(third, 429, "rate_limited")
            assert (
                other_address.post(
                    f"{API}/auth/register",
                    json={"email": throttled.email(), "password": DEFAULT_PASSWORD},
                ).status_code
                == 202
            )
        assert_problem(client.post(f"{API}/auth/register", json=body), 429, "rate_limited")
        assert len(outbox(app)) - sent_before == 1  # this app's mails; the other sent its own


def test_recovery_is_throttled_per_email_and_per_address(throttled: Throttled) -> None:
    app = throttled.app(RECOVERY_MAX_PER_EMAIL=2, RECOVERY_MAX_PER_IP=3)
    with throttled.client(app) as client:
        email = throttled.email()
        recover = f"{API}/auth/password-recovery"
        statuses = [client.post(recover, json={"email": email}).status_code for _ in range(3)]
        assert statuses == [202, 202, 429]
        with throttled.elsewhere() as other_address:
            # Spent here, the email's limit is not spent for the owner elsewhere.
            assert other_address.post(recover, json={"email": email}).is_success
            assert other_address.post(recover, json={"email": throttled.email()}).is_success
        # This address made 3 requests: its limit is spent for any email.
        assert_problem(client.post(recover, json={"email": throttled.email()}), 429)


def test_wrong_current_passwords_count_against_the_account(throttled: Throttled) -> None:
    app = throttled.app(LOGIN_MAX_FAILURES_PER_ACCOUNT=2)
    with throttled.client(app) as client:
        user = new_user(client, email=throttled.email())
        change = f"{API}/users/me/password"
        for _ in range(2):
            body = {"current_password": "guess-password", "new_password": "new-password-1"}
            assert_problem(client.post(change, json=body, headers=user.headers), 400)
        body = {"current_password": user.password, "new_password": "new-password-1"}
        assert_problem(client.post(change, json=body, headers=user.headers), 429, "rate_limited")
        # A budget of its own: whoever holds a stolen token cannot lock the owner out of
        # signing in by guessing the current password.
        assert _token(client, user.email, user.password).status_code == 200


def test_disabled_throttles_never_answer_429(throttled: Throttled) -> None:
    app = throttled.app(
        RATE_LIMIT_ENABLED=False,
        LOGIN_MAX_FAILURES_PER_ACCOUNT=1,
        LOGIN_MAX_FAILURES_PER_IP=1,
        REGISTER_MAX_PER_IP=1,
        RECOVERY_MAX_PER_EMAIL=1,
        RECOVERY_MAX_PER_IP=1,
    )
    with throttled.client(app) as client:
        email = throttled.email()
        register(client, email=email)
        register(client, email=throttled.email())
        for _ in range(5):
            assert _token(client, email, "wrong-password").status_code == 401
            recovery = client.post(f"{API}/auth/password-recovery", json={"email": email})
            assert recovery.status_code == 202
        assert _token(client, email, DEFAULT_PASSWORD).status_code == 200


def test_throttles_are_on_by_default(make_app: Callable[..., FastAPI]) -> None:
    assert Settings().RATE_LIMIT_ENABLED is True
    assert (
        Settings(
            ENVIRONMENT="production",
            SECRET_KEY="x" * 40,
            PASSWORD_RECOVERY_ENABLED=False,
            EMAIL_VERIFICATION_ENABLED=False,
        ).RATE_LIMIT_ENABLED
        is True
    )
    assert make_app().state.settings.RATE_LIMIT_ENABLED is True


def test_long_account_keys_do_not_share_a_counter(throttled: Throttled) -> None:
    """Two long usernames differing only at the end must not share one database counter."""
    app = throttled.app(LOGIN_MAX_FAILURES_PER_ACCOUNT=2)
    with throttled.client(app) as client:
        head = throttled.email().replace("@", "") + "x" * 200
        first, second = f"{head}a@example.com", f"{head}b@example.com"
        throttled.emails.extend([first, second])
        assert len(first) <= 254
        for _ in range(2):
            assert _token(client, first, "wrong-password").status_code == 401
        assert _token(client, first, "wrong-password").status_code == 429
        assert _token(client, second, "wrong-password").status_code == 401


def _quotas(response: Any, field: str) -> dict[str, dict[str, int]]:
    """A RateLimit or RateLimit-Policy field (draft-ietf-httpapi-ratelimit-headers-10), parsed:
    `"name";k=v;...` items, comma separated."""
    parsed: dict[str, dict[str, int]] = {}
    for item in response.headers.get(field, "").split(","):
        if not item.strip():
            continue
        name, *params = item.strip().split(";")
        parsed[name.strip('"')] = {k: int(v) for k, v in (p.split("=") for p in params)}
    return parsed


def test_public_quotas_are_announced_and_account_budgets_never_are(
    throttled: Throttled,
) -> None:
    app = throttled.app(
        LOGIN_MAX_FAILURES_PER_IP=5,
        LOGIN_MAX_FAILURES_PER_ACCOUNT=3,
        LOGIN_FAILURE_WINDOW_SECONDS=WINDOW,
        REGISTER_MAX_PER_IP=4,
        REGISTER_WINDOW_SECONDS=WINDOW,
    )
    with throttled.client(app) as client:
        email = throttled.email()
        signed_up = client.post(
            f"{API}/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
        )
        assert signed_up.status_code == 202
        assert _quotas(signed_up, "ratelimit-policy") == {"register": {"q": 4, "w": WINDOW}}
        state = _quotas(signed_up, "ratelimit")["register"]
        assert state["r"] == 3
        assert 1 <= state["t"] <= WINDOW + 1

        failed = _token(client, email, "wrong-password")
        assert_problem(failed, 401, "invalid_credentials")
        # Only the address's failures show; the account's budget (3) appears nowhere.
        assert _quotas(failed, "ratelimit-policy") == {"sign-in-failures": {"q": 5, "w": WINDOW}}
        assert _quotas(failed, "ratelimit")["sign-in-failures"]["r"] == 4
        for _ in range(2):
            _token(client, email, "wrong-password")
        blocked = _token(client, email, DEFAULT_PASSWORD)
        assert_problem(blocked, 429, "rate_limited")
        assert _quotas(blocked, "ratelimit")["sign-in-failures"]["r"] == 2
        assert "3" not in blocked.headers["ratelimit-policy"]

        # Operations without a public quota send neither field.
        assert "ratelimit" not in client.get("/health/live").headers


def test_a_spent_public_quota_says_so_on_its_429(throttled: Throttled) -> None:
    app = throttled.app(REGISTER_MAX_PER_IP=1, REGISTER_WINDOW_SECONDS=WINDOW)
    with throttled.client(app) as client:
        register(client, email=throttled.email())
        refused = client.post(
            f"{API}/auth/register", json={"email": throttled.email(), "password": DEFAULT_PASSWORD}
        )
        assert_problem(refused, 429, "rate_limited")
        state = _quotas(refused, "ratelimit")["register"]
        assert state["r"] == 0
        assert state["t"] == int(refused.headers["retry-after"])


def _addresses(app: FastAPI) -> None:
    """Let a request name its client address (`X-Test-Address`): one app, many callers."""

    async def client_from_header(request: Request) -> ClientInfo:
        assert request.client is not None
        return ClientInfo(request.headers.get("x-test-address", request.client.host), None)

    app.dependency_overrides[get_client] = client_from_header


def _token_from(client: TestClient, address: str, email: str, password: str) -> Any:
    return client.post(
        f"{API}/auth/token",
        data={"username": email, "password": password},
        headers={"X-Test-Address": address},
    )


def test_a_stranger_cannot_lock_the_owner_out(throttled: Throttled) -> None:
    """Wrong passwords from other addresses spend their own budgets, not the owner's."""
    app = throttled.app(LOGIN_MAX_FAILURES_PER_ACCOUNT=2, RECOVERY_MAX_PER_EMAIL=1)
    _addresses(app)
    stranger = random_ip()
    with throttled.client(app) as owner:
        email = throttled.email()
        register(owner, email=email)
        for _ in range(2):
            assert_problem(_token_from(owner, stranger, email, "wrong-password"), 401)
        refused = _token_from(owner, stranger, email, "wrong-password")
        assert_problem(refused, 429, "rate_limited")
        recover = f"{API}/auth/password-recovery"
        elsewhere = {"X-Test-Address": stranger}
        assert owner.post(recover, json={"email": email}, headers=elsewhere).status_code == 202
        assert_problem(owner.post(recover, json={"email": email}, headers=elsewhere), 429)
        assert _token(owner, email, DEFAULT_PASSWORD).status_code == 200
        assert owner.post(recover, json={"email": email}).is_success


def test_the_account_ceiling_stops_guessing_spread_over_addresses(throttled: Throttled) -> None:
    app = throttled.app(LOGIN_MAX_FAILURES_PER_ACCOUNT=10, LOGIN_MAX_ATTEMPTS_PER_ACCOUNT=3)
    _addresses(app)
    with throttled.client(app) as client:
        email = throttled.email()
        register(client, email=email)
        for _ in range(3):
            assert_problem(_token_from(client, random_ip(), email, "wrong-password"), 401)
        ceiling = _token_from(client, random_ip(), email, "wrong-password")
        assert_problem(ceiling, 429, "rate_limited")


def test_concurrent_wrong_guesses_are_counted_before_any_is_checked(
    throttled: Throttled,
) -> None:
    """30 guesses at once against a limit of 5: at most 5 reach the password check (the
    count comes first, atomically), the others are 429s."""
    app = throttled.app(LOGIN_MAX_FAILURES_PER_ACCOUNT=5)
    with throttled.client(app) as client:
        email = throttled.email()
        register(client, email=email)
        guesses = [partial(_token, client, email, f"wrong-{n}") for n in range(30)]
        statuses = sorted(response.status_code for response in together(*guesses))
    assert statuses.count(401) <= 5, statuses
    assert set(statuses) <= {401, 429}


def test_successful_sign_ins_never_spend_the_account_ceiling(throttled: Throttled) -> None:
    """Counted before the password is checked, a success is taken back: an account that
    signs in often (scripts, many devices) is never throttled for it."""
    app = throttled.app(LOGIN_MAX_FAILURES_PER_ACCOUNT=2, LOGIN_MAX_ATTEMPTS_PER_ACCOUNT=3)
    with throttled.client(app) as client:
        email = throttled.email()
        register(client, email=email)
        for _ in range(6):
            assert _token(client, email, DEFAULT_PASSWORD).status_code == 200
