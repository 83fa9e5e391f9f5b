"""Prometheus metrics at /metrics: requests, latency, in flight, the database pools, sign-in
failures and throttle hits, and the process's CPU, memory and open files.

One process (tests, `--workers 1`): prometheus-client's default registry, with its own
process collector. Several workers (`tasks-api serve --workers N`): prometheus-client's
multiprocess mode, where every worker writes its values to files in one directory and the
worker that answers a scrape sums them all. That mode has no process collector and expects a
hook at each worker's exit, which Uvicorn's supervisor does not offer, so
`WorkerProcessCollector` does both at scrape time from the directory's file names and /proc.

The mode is prometheus-client's, fixed when it is first imported in the process: serve calls
`prepare_multiprocess_directory` before Uvicorn starts its workers, so they inherit
PROMETHEUS_MULTIPROC_DIR (the library's own variable) and start in multiprocess mode.
"""

import functools
import hmac
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings
from app.core.db import Database, read_capacity
from app.core.errors import problem_response

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"
# The route label of a request no route matched (any raw path would be a new series).
UNMATCHED = "<unmatched>"
# Any other method (clients may send any token) is counted under one label.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"
# 1 ms (a cached read) to 10 s (past every database bound); +Inf catches the rest.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
# Throttle kinds (app/auth/service.py): which budget said no.
THROTTLE_KINDS = (
    "login_pair",
    "login_ceiling",
    "login_ip",
    "register_ip",
    "register_email",
    "recovery_ip",
    "recovery_email_ip",
    "recovery_email",
    "verify_resend_ip",
    "verify_resend_email_ip",
    "verify_resend_email",
    "confirm",
)
SIGN_IN_FAILURE_REASONS = ("unknown_account", "wrong_password", "inactive")


def multiprocess_directory(settings: Settings) -> Path | None:
    """The directory this process writes its metric files to, or None in one-process mode.

    prometheus-client chose its mode from PROMETHEUS_MULTIPROC_DIR when it was imported;
    METRICS_MULTIPROCESS_DIR names the same directory to the app (both are set by
    `prepare_multiprocess_directory`).
    """
    if not getattr(values.ValueClass, "_multiprocess", False):
        return None
    if not settings.METRICS_MULTIPROCESS_DIR:
        raise RuntimeError(
            f"{MULTIPROCESS_VARIABLE} is set but METRICS_MULTIPROCESS_DIR is not: set both to"
            " the directory the workers share"
        )
    return Path(settings.METRICS_MULTIPROCESS_DIR)


def prepare_multiprocess_directory(
    settings: Settings, *, workers: int, environ: MutableMapping[str, str]
) -> Path | None:
    """Make an empty directory for the workers' metric files and name it in `environ`.

    For `tasks-api serve`, before it starts Uvicorn, with its environment: the workers inherit
    PROMETHEUS_MULTIPROC_DIR (prometheus-client starts in multiprocess mode) and
    METRICS_MULTIPROCESS_DIR (their Settings name the same directory). Files of an earlier
    serve are removed (their pids are gone, and their totals would be added to this one's).
    One worker runs in the serve process itself, where prometheus-client may already be
    imported in one-process mode: nothing to prepare, None.
    """
    if workers < 2:
        return None
    if settings.METRICS_MULTIPROCESS_DIR:
        directory = Path(settings.METRICS_MULTIPROCESS_DIR)
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True, mode=0o700)
    else:
        directory = Path(tempfile.mkdtemp(prefix="tasks-api-metrics-"))
    environ[MULTIPROCESS_VARIABLE] = str(directory)
    environ["METRICS_MULTIPROCESS_DIR"] = str(directory)
    return directory


@dataclass(frozen=True, slots=True)
class AppMetrics:
    """The process's metric objects (created once; prometheus-client's are process-wide)."""

    requests: Counter
    duration: Histogram
    in_flight: Gauge
    sign_in_failures: Counter
    throttle_hits: Counter
    pool_size: Gauge
    pool_checked_out: Gauge
    pool_waiting: Gauge
    read_gate_size: Gauge
    read_gate_in_use: Gauge
    read_gate_waiting: Gauge


@functools.cache
def app_metrics() -> AppMetrics:
    """The metric objects, made on first use (in a worker, after it inherited the mode)."""
    # Live gauges are summed over the live workers; a dead worker's are dropped at the next
    # scrape (WorkerProcessCollector). In one process the mode is ignored.
    live: Final = "livesum"
    metrics = AppMetrics(
        requests=Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status class.",
            ["method", "route", "status"],
        ),
        duration=Histogram(
            "http_request_duration_seconds",
            "Time from the request's arrival to its response's last byte, by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
        ),
        in_flight=Gauge(
            "http_requests_in_flight",
            "Requests being answered now.",
            multiprocess_mode=live,
        ),
        sign_in_failures=Counter(
            "tasks_api_sign_in_failures",
            "Sign-ins refused for their credentials (throttled ones are throttle hits).",
            ["reason"],
        ),
        throttle_hits=Counter(
            "tasks_api_throttle_hits",
            "Requests refused with 429 by a throttle, by the budget that was spent.",
            ["kind"],
        ),
        pool_size=Gauge(
            "tasks_api_db_pool_size",
            "Connections the pool keeps (its configured size), by pool.",
            ["pool"],
            multiprocess_mode=live,
        ),
        pool_checked_out=Gauge(
            "tasks_api_db_pool_checked_out",
            "Connections checked out of the pool (PostgreSQL's held read sessions included).",
            ["pool"],
            multiprocess_mode=live,
        ),
        pool_waiting=Gauge(
            "tasks_api_db_pool_waiting",
            "Requests waiting for a connection from the pool.",
            ["pool"],
            multiprocess_mode=live,
        ),
        read_gate_size=Gauge(
            "tasks_api_db_read_gate_size",
            "Places at the read gate (GET and HEAD sessions open at once).",
            multiprocess_mode=live,
        ),
        read_gate_in_use=Gauge(
            "tasks_api_db_read_gate_in_use",
            "Places at the read gate taken now.",
            multiprocess_mode=live,
        ),
        read_gate_waiting=Gauge(
            "tasks_api_db_read_gate_waiting",
            "Reads waiting for a place at the read gate.",
            multiprocess_mode=live,
        ),
    )
    # Every series that can exist, at zero: a rate over a series that appears with its first
    # event misses that event.
    for reason in SIGN_IN_FAILURE_REASONS:
        metrics.sign_in_failures.labels(reason)
    for kind in THROTTLE_KINDS:
        metrics.throttle_hits.labels(kind)
    return metrics


def count_sign_in_failure(reason: str) -> None:
    """Count a sign-in refused for its credentials (`reason`: SIGN_IN_FAILURE_REASONS)."""
    app_metrics().sign_in_failures.labels(reason).inc()


def count_throttle_hit(kind: str) -> None:
    """Count a request a throttle refused (`kind`: THROTTLE_KINDS)."""
    app_metrics().throttle_hits.labels(kind).inc()


# Pools: read from the live objects at scrape time (and, under several workers, at the end of
# each request, so a scrape answered by one worker has every worker's last values).


def _waiters(queue_like: object, attribute: str) -> int:
    # asyncio's Semaphore and Queue keep their waiters in a deque (CPython since 3.4); reading
    # its length is the only cheap count. Anything else reads as 0.
    waiters = getattr(queue_like, attribute, None)
    return len(waiters) if waiters is not None else 0


@dataclass(frozen=True, slots=True)
class _PoolSource:
    name: str
    engine: AsyncEngine

    def reading(self) -> tuple[int, int, int]:
        pool: Any = self.engine.sync_engine.pool
        size = pool.size() if hasattr(pool, "size") else 0
        checked_out = pool.checkedout() if hasattr(pool, "checkedout") else 0
        # AsyncAdaptedQueuePool's queue creates its asyncio.Queue on first use: not here.
        queue = getattr(getattr(pool, "_pool", None), "__dict__", {}).get("_queue")
        return size, checked_out, _waiters(queue, "_getters")


class DatabaseGauges:
    """The pool and read-gate gauges of the registered Database, published on demand."""

    def __init__(self) -> None:
        self._pools: list[_PoolSource] = []
        self._database: Database | None = None
        self._last: tuple[int, ...] = ()

    def register(self, database: Database, *, limiter_engine: AsyncEngine | None) -> None:
        """Report these pools from now on (the lifespan's, at start-up)."""
        self._database = database
        self._pools = [_PoolSource("main", database.counter_engine)]
        if limiter_engine is not None:
            self._pools.append(_PoolSource("limiter", limiter_engine))
        self._last = ()
        self.publish()

    def unregister(self, database: Database) -> None:
        """Stop reporting `database`'s pools (its shutdown); their gauges go to zero."""
        if self._database is not database:
            return  # another app of this process registered since (tests)
        self._database = None
        for source in self._pools:
            self._set_pool(source.name, (0, 0, 0))
        self._pools = []
        self._set_gate((0, 0, 0))
        self._last = ()

    def publish(self) -> None:
        """Set the gauges to what the pools say now (only what changed: each set under
        several workers is a write to this worker's file)."""
        database = self._database
        if database is None:
            return
        readings = [source.reading() for source in self._pools]
        gate = database.read_gate
        gate_size = read_capacity(database.settings)
        free = getattr(gate, "_value", gate_size)
        gate_reading = (gate_size, gate_size - free, _waiters(gate, "_waiters"))
        current = (*(n for reading in readings for n in reading), *gate_reading)
        if current == self._last:
            return
        self._last = current
        for source, reading in zip(self._pools, readings, strict=True):
            self._set_pool(source.name, reading)
        self._set_gate(gate_reading)

    @staticmethod
    def _set_pool(name: str, reading: tuple[int, int, int]) -> None:
        metrics = app_metrics()
        metrics.pool_size.labels(name).set(reading[0])
        metrics.pool_checked_out.labels(name).set(reading[1])
        metrics.pool_waiting.labels(name).set(reading[2])

    @staticmethod
    def _set_gate(reading: tuple[int, int, int]) -> None:
        metrics = app_metrics()
        metrics.read_gate_size.set(reading[0])
        metrics.read_gate_in_use.set(reading[1])
        metrics.read_gate_waiting.set(reading[2])


database_gauges = DatabaseGauges()


def register_database(database: Database, *, limiter_engine: AsyncEngine | None = None) -> None:
    """Report `database`'s pool and read gate (and the limiter's pool) on /metrics."""
    database_gauges.register(database, limiter_engine=limiter_engine)


def unregister_database(database: Database) -> None:
    """Stop reporting `database` (the lifespan's shutdown)."""
    database_gauges.unregister(database)


# Per-process CPU, memory and open files under several workers.

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True, slots=True)
class ProcessReading:
    cpu_seconds: float
    resident_bytes: int
    open_fds: int


def read_process(pid: int) -> ProcessReading | None:
    """CPU seconds (user + system), resident memory and open descriptors of `pid` from /proc;
    None if it is gone or /proc cannot say (not Linux, another user's process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        statm = Path(f"/proc/{pid}/statm").read_bytes()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    # The command name (in parentheses) may hold spaces: fields are counted after it, from
    # field 3 (the state); utime and stime are fields 14 and 15.
    fields = stat.rpartition(b")")[2].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return ProcessReading(cpu, int(statm.split()[1]) * _PAGE_SIZE, fds)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


def worker_pids(directory: Path) -> set[int]:
    """The pids that wrote metric files in `directory` (`<kind>_<pid>.db`)."""
    pids = set()
    for path in directory.glob("*.db"):
        _, _, pid = path.stem.rpartition("_")
        if pid.isdigit():
            pids.add(int(pid))
    return pids


class WorkerProcessCollector(Collector):
    """Every live worker's CPU, memory and open files, labelled by pid; and, for each dead
    one, prometheus-client's exit bookkeeping (`mark_process_dead`: its live gauges are
    dropped). A dead worker's counters and histograms stay, so totals never go back."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def collect(self) -> Iterable[Metric]:
        cpu = CounterMetricFamily(
            "process_cpu_seconds", "User and system CPU time, by worker.", labels=["pid"]
        )
        memory = GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory, by worker.", labels=["pid"]
        )
        fds = GaugeMetricFamily(
            "process_open_fds", "Open file descriptors, by worker.", labels=["pid"]
        )
        for pid in sorted(worker_pids(self._directory)):
            reading = read_process(pid) if _alive(pid) else None
            if reading is None:
                if not _alive(pid):
                    mark_process_dead(pid, str(self._directory))  # type: ignore[no-untyped-call]
                continue
            label = [str(pid)]
            cpu.add_metric(label, reading.cpu_seconds)
            memory.add_metric(label, reading.resident_bytes)
            fds.add_metric(label, reading.open_fds)
        return [cpu, memory, fds]


@functools.cache
def scrape_registry(directory: Path | None) -> CollectorRegistry:
    """What /metrics exposes: the default registry in one process; under several workers
    (`directory`), every worker's files summed, and the workers' processes."""
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    # First, so a dead worker's live gauges are gone before the files are summed.
    registry.register(WorkerProcessCollector(directory))
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return registry


# The request middleware.


def route_template(scope: Scope) -> str:
    """The template of the route that matched (`/api/v1/tasks/{task_id}`), or UNMATCHED."""
    # FastAPI includes routers lazily: scope["route"] is the router's own route, whose path
    # lacks the prefixes it was included under; the full template is in the effective route
    # context FastAPI keeps for the request (tests/core/test_metrics.py checks it).
    context = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None)
    if template:
        return str(template)
    return str(getattr(scope.get("route"), "path_format", None) or UNMATCHED)


def _unmeasured(path: str) -> bool:
    # The scrape and the probes run every few seconds whatever the traffic: counted, they
    # would bury the API's own requests (their latency is the scraper's and the orchestrator's
    # to see).
    return path == METRICS_PATH or path.startswith("/health/")


class MetricsMiddleware:
    """Count each request and observe its latency, by method, route template and status.

    One counter increment and one histogram observation per request, their label children
    cached by (method, route, status class); the in-flight gauge around it.
    """

    def __init__(self, app: ASGIApp, *, publish_pools: bool) -> None:
        self.app = app
        metrics = app_metrics()
        self._requests = metrics.requests
        self._duration = metrics.duration
        self._in_flight = metrics.in_flight
        # Under several workers, a scrape sees other workers' pools only as they last wrote
        # them: each writes at the end of its requests (if anything changed).
        self._publish: Callable[[], None] | None = (
            database_gauges.publish if publish_pools else None
        )
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _new_series(self, key: tuple[str, str, int]) -> tuple[Any, Any]:
        method, route, status = key
        status_class = STATUS_CLASSES[status - 1] if 1 <= status <= 5 else "5xx"
        series = (
            self._requests.labels(method, route, status_class),
            self._duration.labels(method, route),
        )
        self._series[key] = series
        return series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _unmeasured(scope["path"]):
            await self.app(scope, receive, send)
            return
        status = 500  # an error that escapes every handler ends as the server's 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self._in_flight.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - started
            self._in_flight.dec()
            method = scope["method"]
            key = (
                method if method in METHODS else OTHER_METHOD,
                route_template(scope),
                status // 100,
            )
            counter, histogram = self._series.get(key) or self._new_series(key)
            counter.inc()
            histogram.observe(elapsed)
            if self._publish is not None:
                self._publish()


# The page.

NOT_FOUND_DETAIL = "No resource at this path."


def _scrape_refusal(request: Request, settings: Settings) -> Response | None:
    """The answer to a scrape that may not see the page, or None."""
    token = settings.METRICS_TOKEN
    if token is None:
        # No token, no page, except on a developer's machine: a deployment that forgot the
        # token must not publish its traffic, and a 404 like any unknown path's says nothing.
        if settings.ENVIRONMENT == "development":
            return None
        return problem_response(404, "not_found", NOT_FOUND_DETAIL)
    scheme, _, offered = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not offered.strip():
        return problem_response(
            401,
            "not_authenticated",
            "The metrics page needs the scraper's bearer token.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(offered.strip().encode(), token.get_secret_value().encode()):
        # As RFC 6750 3.1 writes it, like the API's own token errors.
        detail = "The bearer token is not the metrics token."
        return problem_response(
            401,
            "invalid_token",
            detail,
            headers={
                "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{detail}"'
            },
        )
    return None


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """Add the request metrics (outermost middleware) and the /metrics page (the last route).

    Nothing when METRICS_ENABLED is off. The page is outside the API's prefix and the OpenAPI
    document, and neither throttled nor counted.
    """
    if not settings.METRICS_ENABLED:
        return
    directory = multiprocess_directory(settings)
    app.add_middleware(MetricsMiddleware, publish_pools=directory is not None)

    async def metrics_page(request: Request) -> Response:
        """Prometheus' text exposition of this process's (or every worker's) metrics."""
        refusal = _scrape_refusal(request, settings)
        if refusal is not None:
            return refusal
        database_gauges.publish()
        body = generate_latest(scrape_registry(directory))
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_route(METRICS_PATH, metrics_page, methods=["GET"], include_in_schema=False)
