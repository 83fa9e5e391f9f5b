"""Logs: JSON lines with the request id on every line, one access line per request, request
ids kept when sane, and no secret ever written."""

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.core.config import EXAMPLE_SECRET_KEY, Settings
from tests.auth.helpers import mails_to, outbox, reset_token_from, verification_token_from
from tests.factories import API, DEFAULT_PASSWORD, bearer, register, sign_in, unique_email

JSON_LOGS = {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}


def json_lines(captured: str) -> list[dict[str, Any]]:
    """Every line written, each parsed (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in captured.splitlines() if line.strip()]


def access_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == "request"]


def test_one_access_line_per_request_with_the_route_template(
    make_app: Callable[..., FastAPI], capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(make_app(**JSON_LOGS), client=("203.0.113.7", 5000)) as client:
        user = register(client)
        tokens = sign_in(client, user["email"])
        headers = bearer(tokens["access_token"])
        capsys.readouterr()
        missing = uuid.uuid4()
        response = client.get(f"{API}/tasks/{missing}", headers=headers)
        assert response.status_code == 404
        unknown = client.get(f"/no/such/{missing}")
        assert unknown.status_code == 404
    lines = access_lines(json_lines(capsys.readouterr().err))
    assert len(lines) == 2
    task, nothing = lines
    assert task["route"] == f"{API}/tasks/{{task_id}}"
    assert str(missing) not in json.dumps(lines)  # never the raw path
    assert task["method"] == "GET"
    assert task["status"] == 404
    assert task["user_id"] == user["id"]
    assert task["client"] == "203.0.113.7"
    assert task["bytes"] == len(response.content)
    assert isinstance(task["duration_ms"], float)
    assert task["request_id"] == response.headers["x-request-id"]
    assert task["level"] == "info"
    assert "timestamp" in task
    assert (nothing["route"], nothing["user_id"]) == ("<unmatched>", None)


def test_every_line_of_a_request_carries_its_request_id(
    make_app: Callable[..., FastAPI], capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app(**JSON_LOGS)

    @app.get("/test-logs")
    async def _logs() -> dict[str, str]:
        logging.getLogger("app.example").warning("first line")
        logging.getLogger("app.example").warning("second line")
        return {}

    with TestClient(app) as client:
        capsys.readouterr()
        response = client.get("/test-logs", headers={"X-Request-ID": "job-42.retry_1"})
    assert response.headers["x-request-id"] == "job-42.retry_1"
    # The app's lines only: the test's own HTTP client logs its requests too.
    lines = [
        line
        for line in json_lines(capsys.readouterr().err)
        if not line.get("logger", "").startswith("httpx")
    ]
    written = [line for line in lines if line["event"] in {"first line", "second line"}]
    assert len(written) == 2
    assert len(lines) == 3  # and the access line
    assert {line["request_id"] for line in lines} == {"job-42.retry_1"}
    assert {line["logger"] for line in written} == {"app.example"}


@pytest.mark.parametrize(
    "sent",
    ["", "x" * 129, "has space", "new\nline", "semi;colon", "ünïcode", "../../etc"],
)
def test_an_insane_request_id_is_replaced(client: TestClient, sent: str) -> None:
    response = client.get("/health/live", headers={"X-Request-ID": sent.encode()})
    kept = response.headers["x-request-id"]
    assert kept != sent
    assert len(kept) == 32
    assert kept.isalnum()


@pytest.mark.parametrize(
    "sent", ["a", "x" * 128, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "A.b-c_d"]
)
def test_a_sane_request_id_is_kept_in_the_header_and_the_problem(
    client: TestClient, sent: str
) -> None:
    response = client.get(f"{API}/tasks", headers={"X-Request-ID": sent})
    assert response.status_code == 401
    assert response.headers["x-request-id"] == sent
    assert response.json()["request_id"] == sent


def test_log_level_accepts_any_case() -> None:
    assert Settings(LOG_LEVEL="warning").LOG_LEVEL == "WARNING"  # type: ignore[arg-type]
    assert Settings(LOG_LEVEL="Debug").LOG_LEVEL == "DEBUG"  # type: ignore[arg-type]


def test_no_secret_reaches_a_log_line(
    make_app: Callable[..., FastAPI], capfd: pytest.CaptureFixture[str]
) -> None:
    """Sign up and confirm the address, sign in, refresh, recover, change a password and the
    email with every logger at DEBUG: no password, token, mailed link or Authorization value
    is in any line."""
    password, new_password, newest = DEFAULT_PASSWORD, "a-new-password-42", "the-newest-pw-42"
    secrets: list[str] = [password, new_password, newest]
    app = make_app(LOG_LEVEL="DEBUG", LOG_FORMAT="json", EMAIL_VERIFICATION_ENABLED=True)

    def confirm_mailed_link(address: str) -> None:
        mail = mails_to(app, address)[-1]
        token = verification_token_from(mail)
        secrets.extend([token, *(line for line in mail.body.splitlines() if token in line)])
        confirmed = client.post(f"{API}/auth/verify", json={"token": token})
        assert confirmed.status_code == 204, confirmed.text

    with TestClient(app) as client:
        user = register(client, password=password)
        confirm_mailed_link(user["email"])
        tokens = sign_in(client, user["email"], password)
        secrets += [tokens["access_token"], tokens["refresh_token"]]
        refreshed = client.post(
            f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        pair = refreshed.json()
        secrets += [pair["access_token"], pair["refresh_token"]]
        assert client.get(f"{API}/users/me", headers=bearer(pair["access_token"])).is_success

        recovery = client.post(f"{API}/auth/password-recovery", json={"email": user["email"]})
        assert recovery.status_code == 202, recovery.text
        mail = outbox(app)[-1]
        token = reset_token_from(mail)
        secrets += [token, *(line for line in mail.body.splitlines() if token in line)]
        reset = client.post(
            f"{API}/auth/password-reset", json={"token": token, "new_password": new_password}
        )
        assert reset.is_success, reset.text

        fresh = sign_in(client, user["email"], new_password)
        secrets += [fresh["access_token"], fresh["refresh_token"]]
        changed = client.post(
            f"{API}/users/me/password",
            json={"current_password": new_password, "new_password": newest},
            headers=bearer(fresh["access_token"]),
        )
        assert changed.is_success, changed.text
        new_email = unique_email("moved")
        moving = client.patch(
            f"{API}/users/me",
            json={"email": new_email, "current_password": newest},
            headers=bearer(fresh["access_token"]),
        )
        assert moving.json()["pending_email"] == new_email, moving.text
        confirm_mailed_link(new_email)
        user["email"] = new_email
        wrong = client.post(
            f"{API}/auth/token", data={"username": user["email"], "password": "guess-" + newest}
        )
        assert wrong.status_code == 401
        secrets.append("guess-" + newest)
    captured = capfd.readouterr()
    written = captured.err + captured.out
    assert access_lines(json_lines(captured.err)), "nothing was logged: the test saw nothing"
    leaked = [secret for secret in secrets if secret in written]
    assert leaked == []
    for token_value in secrets[3:]:
        assert f"Bearer {token_value}" not in written


def test_the_example_secret_key_is_warned_about_at_start(
    make_app: Callable[..., FastAPI], capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(make_app(SECRET_KEY=EXAMPLE_SECRET_KEY, **JSON_LOGS)):
        pass
    warnings = [
        line
        for line in json_lines(capsys.readouterr().err)
        if line["level"] == "warning" and "SECRET_KEY" in line["event"]
    ]
    assert len(warnings) == 1
    with TestClient(make_app(**JSON_LOGS)):
        pass
    assert "SECRET_KEY" not in capsys.readouterr().err
