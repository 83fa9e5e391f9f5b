"""Prometheus metrics (app/core/metrics.py): labels, buckets, gauges, counters, the token, and
two Uvicorn workers counted in one scrape."""

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.core.db import DatabaseDep
from app.core.metrics import (
    LATENCY_BUCKETS,
    UNMATCHED,
    MetricsMiddleware,
    WorkerProcessCollector,
    database_gauges,
    prepare_multiprocess_directory,
    read_process,
    worker_pids,
)
from tests.conftest import (
    ROOT,
    TEST_SECRET,
    alembic_config,
    new_database_url,
    settings_for,
)
from tests.factories import API, register, unique_email
from tests.helpers import assert_problem

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
TOKEN = "scraper-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(body: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape(client: TestClient | httpx.Client, url: str = "/metrics") -> Samples:
    response = client.get(url, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for sample_name, labels in samples if sample_name == name]


@pytest.fixture
def metrics_client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(make_app(METRICS_TOKEN=TOKEN, DB_POOL_SIZE=7)) as client:
        yield client


def test_requests_are_counted_by_route_template_and_status_class(
    metrics_client: TestClient,
) -> None:
    client = metrics_client
    task = f"{API}/tasks/{{task_id}}"
    before = scrape(client)
    assert client.get(f"{API}/tasks/{uuid.uuid4()}").status_code == 401
    assert client.get(f"{API}/tasks/{uuid.uuid4()}").status_code == 401
    register(client)
    assert client.get("/no/such/path").status_code == 404
    assert client.put(f"{API}/users/me").status_code == 405
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("http_requests_total", method="GET", route=task, status="4xx") == 2
    register_route = f"{API}/auth/register"
    assert grew("http_requests_total", method="POST", route=register_route, status="2xx") == 1
    assert grew("http_requests_total", method="GET", route=UNMATCHED, status="4xx") == 1
    assert grew("http_requests_total", method="PUT", route=f"{API}/users/me", status="4xx") == 1
    assert grew("http_request_duration_seconds_count", method="GET", route=task) == 2
    # Never a raw path: every route label is a template or the one unmatched value.
    routes = {labels["route"] for labels in series(after, "http_requests_total")}
    assert not [route for route in routes if UUID.search(route) or route.startswith("/no/")]


def test_scrapes_and_probes_are_not_counted(metrics_client: TestClient) -> None:
    client = metrics_client
    assert client.get("/health/live").status_code == 200
    samples = scrape(client)
    samples = scrape(client)
    routes = {labels["route"] for labels in series(samples, "http_requests_total")}
    assert "/metrics" not in routes
    assert not any(route.startswith("/health") for route in routes)


def test_latency_histogram_buckets_run_from_1ms_to_10s(metrics_client: TestClient) -> None:
    metrics_client.get(f"{API}/users/me")
    samples = scrape(metrics_client)
    labels = {"method": "GET", "route": f"{API}/users/me"}
    bounds = [
        float(entry["le"])
        for entry in series(samples, "http_request_duration_seconds_bucket")
        if {k: entry[k] for k in labels} == labels
    ]
    assert sorted(bounds) == [*LATENCY_BUCKETS, float("inf")]
    assert LATENCY_BUCKETS[0] == 0.001
    assert LATENCY_BUCKETS[-1] == 10.0


def test_requests_in_flight(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(METRICS_TOKEN=TOKEN)
    seen: list[float] = []

    @app.get("/probe/in-flight")
    async def in_flight() -> None:
        from app.core.metrics import app_metrics

        seen.append(app_metrics().in_flight._value.get())

    with TestClient(app) as client:
        assert value(scrape(client), "http_requests_in_flight") == 0
        assert client.get("/probe/in-flight").status_code == 200
        assert value(scrape(client), "http_requests_in_flight") == 0
    assert seen == [1.0]


def test_pool_and_read_gate_gauges(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(METRICS_TOKEN=TOKEN, DB_POOL_SIZE=7)
    inside: dict[str, float] = {}

    @app.get("/probe/pool")
    async def pool(database: DatabaseDep) -> None:
        async with database.read_session() as session:
            await (await session.connection()).execute(text("SELECT 1"))
            # Hold every other place, then queue one more read behind them.
            held = [await database.read_gate.acquire() for _ in range(2)]
            waiter = asyncio.ensure_future(database.read_gate.acquire())
            await asyncio.sleep(0)  # lets the waiter reach the gate (no time passes)
            database_gauges.publish()
            samples = parse(_registry_text())
            waiter.cancel()
            for _ in held:
                database.read_gate.release()
        inside["in_use"] = value(samples, "tasks_api_db_read_gate_in_use")
        inside["waiting"] = value(samples, "tasks_api_db_read_gate_waiting")
        inside["checked_out"] = value(samples, "tasks_api_db_pool_checked_out", pool="main")

    with TestClient(app) as client:
        samples = scrape(client)
        assert value(samples, "tasks_api_db_pool_size", pool="main") == 7
        assert value(samples, "tasks_api_db_pool_size", pool="limiter") == 6
        assert value(samples, "tasks_api_db_read_gate_size") == 3
        assert value(samples, "tasks_api_db_read_gate_in_use") == 0
        assert value(samples, "tasks_api_db_read_gate_waiting") == 0
        assert value(samples, "tasks_api_db_pool_waiting", pool="main") == 0
        assert client.get("/probe/pool").status_code == 200
        assert inside == {"in_use": 3, "waiting": 1, "checked_out": inside["checked_out"]}
        assert inside["checked_out"] >= 1
        assert value(scrape(client), "tasks_api_db_read_gate_in_use") == 0


def _registry_text() -> str:
    from prometheus_client import REGISTRY, generate_latest

    return generate_latest(REGISTRY).decode()


def test_process_cpu_memory_and_open_files(metrics_client: TestClient) -> None:
    samples = scrape(metrics_client)
    assert value(samples, "process_cpu_seconds_total") > 0
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_open_fds") > 0


def test_sign_in_failures_by_reason(metrics_client: TestClient) -> None:
    client = metrics_client
    account = register(client)
    before = scrape(client)
    token_url = f"{API}/auth/token"
    wrong = client.post(token_url, data={"username": account["email"], "password": "x" * 12})
    unknown = client.post(token_url, data={"username": unique_email(), "password": "x" * 12})
    assert (wrong.status_code, unknown.status_code) == (401, 401)
    after = scrape(client)
    for reason in ("wrong_password", "unknown_account"):
        grown = value(after, "tasks_api_sign_in_failures_total", reason=reason) - value(
            before, "tasks_api_sign_in_failures_total", reason=reason
        )
        assert grown == 1, reason
    assert value(after, "tasks_api_sign_in_failures_total", reason="inactive") == value(
        before, "tasks_api_sign_in_failures_total", reason="inactive"
    )


@pytest.mark.parametrize(
    ("kind", "limits", "url", "payload"),
    [
        ("login_pair", {"LOGIN_MAX_FAILURES_PER_ACCOUNT": 1}, "/auth/token", "sign_in"),
        ("login_ceiling", {"LOGIN_MAX_ATTEMPTS_PER_ACCOUNT": 1}, "/auth/token", "sign_in"),
        ("login_ip", {"LOGIN_MAX_FAILURES_PER_IP": 1}, "/auth/token", "sign_in"),
        ("register_ip", {"REGISTER_MAX_PER_IP": 1}, "/auth/register", "register"),
        ("recovery_ip", {"RECOVERY_MAX_PER_IP": 1}, "/auth/password-recovery", "recovery"),
        ("recovery_email_ip", {"RECOVERY_MAX_PER_EMAIL": 1}, "/auth/password-recovery", "recovery"),
        ("verify_resend_ip", {"VERIFY_RESEND_MAX_PER_IP": 1}, "/auth/verify/resend", "resend"),
        (
            "verify_resend_email_ip",
            {"VERIFY_RESEND_MAX_PER_EMAIL": 1},
            "/auth/verify/resend",
            "one_email",
        ),
    ],
)
def test_throttle_hits_by_kind(
    make_app: Callable[..., FastAPI],
    kind: str,
    limits: dict[str, int],
    url: str,
    payload: str,
) -> None:
    email = unique_email()

    def send(client: TestClient) -> httpx.Response:
        if payload == "sign_in":
            return client.post(f"{API}{url}", data={"username": email, "password": "x" * 12})
        if payload == "register":
            body = {"email": unique_email(), "password": "correct-horse-battery"}
            return client.post(f"{API}{url}", json=body)
        if payload == "resend":  # a new address each time: only the address's budget is met
            return client.post(f"{API}{url}", json={"email": unique_email()})
        return client.post(f"{API}{url}", json={"email": email})

    with TestClient(make_app(METRICS_TOKEN=TOKEN, **limits)) as client:
        before = value(scrape(client), "tasks_api_throttle_hits_total", kind=kind)
        assert send(client).status_code != 429
        assert send(client).status_code == 429
        after = value(scrape(client), "tasks_api_throttle_hits_total", kind=kind)
    assert after - before == 1


def test_without_a_token_metrics_is_open_in_development_only(
    make_app: Callable[..., FastAPI],
) -> None:
    with TestClient(make_app(ENVIRONMENT="development")) as client:
        assert client.get("/metrics").status_code == 200
    with TestClient(make_app()) as client:  # ENVIRONMENT=test
        assert_problem(client.get("/metrics"), 404, "not_found")
    production = make_app(
        ENVIRONMENT="production", PASSWORD_RECOVERY_ENABLED=False, EMAIL_VERIFICATION_ENABLED=False
    )
    with TestClient(production) as client:
        assert_problem(client.get("/metrics"), 404, "not_found")
        assert_problem(client.get("/metrics", headers=AUTH), 404, "not_found")


@pytest.mark.parametrize("environment", ["development", "test"])
def test_with_a_token_every_scrape_must_bear_it(
    make_app: Callable[..., FastAPI], environment: str
) -> None:
    with TestClient(make_app(ENVIRONMENT=environment, METRICS_TOKEN=TOKEN)) as client:
        for headers in ({}, {"Authorization": TOKEN}, {"Authorization": "Basic " + TOKEN}):
            assert_problem(client.get("/metrics", headers=headers), 401, "not_authenticated")
        for wrong in ("wrong", TOKEN[:-1], TOKEN + "x"):
            response = client.get("/metrics", headers={"Authorization": f"Bearer {wrong}"})
            assert_problem(response, 401, "invalid_token")
        assert client.get("/metrics", headers=AUTH).status_code == 200


def test_metrics_is_outside_the_openapi_document(metrics_client: TestClient) -> None:
    app = metrics_client.app
    assert isinstance(app, FastAPI)
    assert "/metrics" not in app.openapi()["paths"]


def test_metrics_can_be_switched_off(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(METRICS_ENABLED=False, METRICS_TOKEN=TOKEN)
    assert not any(entry.cls is MetricsMiddleware for entry in app.user_middleware)
    with TestClient(app) as client:
        assert_problem(client.get("/metrics", headers=AUTH), 404, "not_found")


# Several workers' bookkeeping, piece by piece.


def test_prepare_multiprocess_directory(tmp_path: Path) -> None:
    configured = tmp_path / "metrics"
    configured.mkdir()
    (configured / "counter_99999999.db").write_bytes(b"stale")
    settings = settings_for("sqlite://", METRICS_MULTIPROCESS_DIR=str(configured))
    environ: dict[str, str] = {}
    assert prepare_multiprocess_directory(settings, workers=1, environ=environ) is None
    assert environ == {}
    assert prepare_multiprocess_directory(settings, workers=2, environ=environ) == configured
    assert environ == {
        "PROMETHEUS_MULTIPROC_DIR": str(configured),
        "METRICS_MULTIPROCESS_DIR": str(configured),
    }
    assert list(configured.iterdir()) == []
    fresh = prepare_multiprocess_directory(settings_for("sqlite://"), workers=2, environ=environ)
    assert fresh is not None
    assert fresh.is_dir()
    assert environ["PROMETHEUS_MULTIPROC_DIR"] == environ["METRICS_MULTIPROCESS_DIR"] == str(fresh)
    assert fresh.parent == Path(tempfile.gettempdir())
    fresh.rmdir()


def test_dead_workers_lose_their_live_gauges_and_keep_their_counts(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = int(finished.stdout)
    alive = os.getpid()
    for pid in (dead, alive):
        for kind in ("counter", "histogram", "gauge_livesum"):
            (tmp_path / f"{kind}_{pid}.db").write_bytes(b"")
    assert worker_pids(tmp_path) == {dead, alive}
    families = {family.name: family for family in WorkerProcessCollector(tmp_path).collect()}
    pids = {sample.labels["pid"] for sample in families["process_cpu_seconds"].samples}
    assert pids == {str(alive)}
    assert not (tmp_path / f"gauge_livesum_{dead}.db").exists()
    assert (tmp_path / f"counter_{dead}.db").exists()
    assert (tmp_path / f"histogram_{dead}.db").exists()
    reading = read_process(alive)
    assert reading is not None
    assert reading.cpu_seconds > 0
    assert reading.resident_bytes > 0
    assert reading.open_fds > 0
    assert read_process(dead) is None


# Two Uvicorn workers, one scrape.


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _served_by_pid(directory: Path) -> dict[int, float]:
    """Each worker's own count of the requests below, read from its counter file."""
    served = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.rpartition("_")[2])
        total = 0.0
        for family in MultiProcessCollector.merge([str(path)]):
            for sample in family.samples:
                if sample.name == "http_requests_total":
                    total += sample.value
        served[pid] = total
    return served


def test_two_workers_are_counted_in_one_scrape(tmp_path: Path) -> None:
    url, drop = new_database_url(tmp_path)
    directory = tmp_path / "metrics"
    pool_size = 4
    settings = settings_for(url, METRICS_MULTIPROCESS_DIR=str(directory))
    process = None
    log = (tmp_path / "uvicorn.log").open("w")
    try:
        command.upgrade(alembic_config(settings), "head")
        variables = {"PROMETHEUS_MULTIPROC_DIR", "METRICS_MULTIPROCESS_DIR"}
        env = {key: val for key, val in os.environ.items() if key not in variables}
        env.update(
            DATABASE_URL=url,
            ENVIRONMENT="test",
            SECRET_KEY=TEST_SECRET,
            METRICS_TOKEN=TOKEN,
            DB_POOL_SIZE=str(pool_size),
            LOG_LEVEL="WARNING",
            GC_TUNING="false",
        )
        assert prepare_multiprocess_directory(settings, workers=2, environ=env) == directory
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                *("-m", "uvicorn", "app.main:app", "--workers", "2"),
                *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60  # a hang guard only
        while True:
            assert time.monotonic() < deadline, (tmp_path / "uvicorn.log").read_text()
            assert process.poll() is None, (tmp_path / "uvicorn.log").read_text()
            try:
                if httpx.get(f"{base}/health/live").status_code == 200:
                    break
            except httpx.TransportError:
                # Gives the server a moment to start (and notices if it exits instead).
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.1)

        # A new connection per request, until each worker has answered some.
        sent = 0
        while True:
            assert time.monotonic() < deadline, _served_by_pid(directory)
            for _ in range(20):
                assert httpx.get(f"{base}{API}/users/me").status_code == 401
                sent += 1
            served = _served_by_pid(directory)
            if len([pid for pid, count in served.items() if count > 0]) >= 2:
                break

        with httpx.Client(base_url=base) as client:
            samples = scrape(client)
        labels = {"method": "GET", "route": f"{API}/users/me", "status": "4xx"}
        assert value(samples, "http_requests_total", **labels) == sent
        assert sum(served.values()) == sent
        histogram = {"method": "GET", "route": f"{API}/users/me"}
        assert value(samples, "http_request_duration_seconds_count", **histogram) == sent
        assert value(samples, "http_requests_in_flight") == 0
        # Each worker's pool, summed.
        assert value(samples, "tasks_api_db_pool_size", pool="main") == 2 * pool_size
        workers = {pid for pid, count in served.items() if count > 0}
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes"):
            assert {int(entry["pid"]) for entry in series(samples, name)} == workers
        for entry in series(samples, "process_open_fds"):
            assert value(samples, "process_open_fds", **entry) > 0
        assert len(series(samples, "process_open_fds")) == 2
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        drop()
