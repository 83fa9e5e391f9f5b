"""Tracing: off by default with nothing installed; on, a server span per request named by its
route template, with the request's SQL statements as its descendants, and no span for the
ASGI messages or the probes."""

import logging
import sys
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.background import BackgroundTask

from app.core import tracing
from app.core.config import Settings
from app.main import create_app
from app.tasks import prebuilt
from tests.factories import API, make_task, new_user

ORIGINAL_BACKGROUND_CALL = BackgroundTask.__call__
OTEL_SETTINGS = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME")


@pytest.fixture
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults as shipped, whatever the shell running the tests exports."""
    for name in OTEL_SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def traced_app(
    make_app: Callable[..., FastAPI], settings: Settings, provider: TracerProvider
) -> FastAPI:
    # make_app is requested so the tables are emptied after the test.
    return create_app(settings, tracer_provider=provider)


def statement(span: ReadableSpan) -> str | None:
    attributes = span.attributes or {}
    text = attributes.get("db.statement", attributes.get("db.query.text"))
    return str(text) if text is not None else None


def server_spans(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [span for span in spans if span.kind is SpanKind.SERVER]


def leads_to(span: ReadableSpan, root: ReadableSpan, spans: tuple[ReadableSpan, ...]) -> bool:
    """Whether the span's chain of parents reaches `root`."""
    by_id = {item.context.span_id: item for item in spans if item.context is not None}
    current: ReadableSpan | None = span
    while current is not None and current.parent is not None:
        if root.context is not None and current.parent.span_id == root.context.span_id:
            return True
        current = by_id.get(current.parent.span_id)
    return False


def asyncpg_instrumented() -> bool:
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    return bool(instrumentor.is_instrumented_by_opentelemetry)


def otel_middleware_installed(app: FastAPI) -> bool:
    layer = app.middleware_stack
    while layer is not None:
        if isinstance(layer, OpenTelemetryMiddleware):
            return True
        layer = getattr(layer, "app", None)
    return False


def test_a_request_is_a_server_span_with_its_statements_below_it(
    traced_app: FastAPI, exporter: InMemorySpanExporter, settings: Settings
) -> None:
    with TestClient(traced_app) as client:
        user = new_user(client)
        make_task(client, user, title="traced")
        exporter.clear()
        response = client.get(f"{API}/tasks", headers=user.headers)
        assert response.status_code == 200

    spans = exporter.get_finished_spans()
    [request] = server_spans(spans)
    assert request.name == "GET /api/v1/tasks"
    assert request.attributes is not None
    assert request.attributes.get("http.route") == "/api/v1/tasks"
    database = [span for span in spans if span.kind is SpanKind.CLIENT]
    assert database, [span.name for span in spans]
    for span in database:
        assert statement(span), span.name
        assert span.context is not None
        assert request.context is not None
        assert span.context.trace_id == request.context.trace_id
        assert leads_to(span, request, spans), span.name
    # No per-message ASGI spans (exclude_spans): every span is the request's or a statement's.
    assert {span.kind for span in spans} == {SpanKind.SERVER, SpanKind.CLIENT}
    scopes = {span.instrumentation_scope.name for span in database if span.instrumentation_scope}
    if settings.is_postgres:
        # asyncpg's instrumentation sees every statement; SQLAlchemy's is not added there.
        assert scopes == {"opentelemetry.instrumentation.asyncpg"}
    else:
        assert scopes == {"opentelemetry.instrumentation.sqlalchemy"}


def test_writes_and_the_rate_limiter_engine_are_traced(
    traced_app: FastAPI, exporter: InMemorySpanExporter
) -> None:
    with TestClient(traced_app) as client:
        new_user(client)

    spans = exporter.get_finished_spans()
    names = {span.name for span in server_spans(spans)}
    assert {"POST /api/v1/auth/register", "POST /api/v1/auth/token"} <= names
    statements = [statement(span) or "" for span in spans if span.kind is SpanKind.CLIENT]
    assert any(text.lstrip().upper().startswith("INSERT") for text in statements)


@pytest.mark.postgres
def test_prebuilt_reads_show_as_asyncpg_spans(
    traced_app: FastAPI, exporter: InMemorySpanExporter
) -> None:
    with TestClient(traced_app) as client:
        user = new_user(client)
        task = make_task(client, user, title="traced")
        exporter.clear()
        response = client.get(f"{API}/tasks/{task['id']}", headers=user.headers)
        assert response.status_code == 200

    spans = exporter.get_finished_spans()
    [request] = server_spans(spans)
    assert request.name == "GET /api/v1/tasks/{task_id}"
    [read] = [span for span in spans if statement(span) == prebuilt.READ_ONE.sql]
    assert read.instrumentation_scope is not None
    assert read.instrumentation_scope.name == "opentelemetry.instrumentation.asyncpg"
    assert leads_to(read, request, spans)


def test_probes_are_not_traced(traced_app: FastAPI, exporter: InMemorySpanExporter) -> None:
    with TestClient(traced_app) as client:
        exporter.clear()
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").status_code == 200

    assert server_spans(exporter.get_finished_spans()) == []


def test_shutdown_undoes_the_process_wide_patches(traced_app: FastAPI, settings: Settings) -> None:
    with TestClient(traced_app) as client:
        assert client.get("/health/live").status_code == 200
        assert asyncpg_instrumented() is settings.is_postgres

    assert not asyncpg_instrumented()
    assert BackgroundTask.__call__ is ORIGINAL_BACKGROUND_CALL


def test_asyncpg_spans_go_to_the_latest_running_app() -> None:
    first, second = TracerProvider(), TracerProvider()
    one = tracing.Tracing(first, postgres=True, owned=False)
    two = tracing.Tracing(second, postgres=True, owned=False)
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    try:
        one.start([])
        two.start([])
        assert instrumentor._tracer is not None
        assert instrumentor.is_instrumented_by_opentelemetry
        two.stop()
        assert instrumentor.is_instrumented_by_opentelemetry
        assert tracing._asyncpg_providers == [first]
        two.stop()  # a second stop changes nothing
        assert tracing._asyncpg_providers == [first]
        one.stop()
        assert not instrumentor.is_instrumented_by_opentelemetry
        assert tracing._asyncpg_providers == []
    finally:
        one.stop()
        two.stop()


@pytest.mark.usefixtures("no_otel_environment")
def test_off_by_default_with_nothing_installed(make_app: Callable[..., FastAPI]) -> None:
    assert not tracing.tracing_requested(Settings(_env_file=None))
    app = make_app()
    assert app.state.tracing is None
    with TestClient(app) as client:
        assert client.get("/health/live").status_code == 200
        assert not otel_middleware_installed(app)
        assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
        assert not asyncpg_instrumented()
        assert BackgroundTask.__call__ is ORIGINAL_BACKGROUND_CALL


@pytest.mark.parametrize(
    ("values", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "elsewhere"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
    ],
)
@pytest.mark.usefixtures("no_otel_environment")
def test_the_standard_variables_turn_it_on(values: dict[str, str], on: bool) -> None:
    settings = Settings(_env_file=None, **values)  # type: ignore[arg-type]
    assert tracing.tracing_requested(settings) is on


def test_settings_build_a_batched_otlp_pipeline(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318/", OTEL_SERVICE_NAME="svc")
    state: tracing.Tracing | None = app.state.tracing
    assert state is not None
    assert state.owned
    provider = state.provider
    assert isinstance(provider, TracerProvider)
    try:
        assert provider.resource.attributes["service.name"] == "svc"
        [processor] = provider._active_span_processor._span_processors
        exporter = processor.span_exporter  # type: ignore[attr-defined]
        assert type(exporter).__module__.startswith("opentelemetry.exporter.otlp.proto.http")
        assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"
        # Started and stopped with no request: nothing to send, the patches undone.
        with TestClient(app):
            pass
        assert BackgroundTask.__call__ is ORIGINAL_BACKGROUND_CALL
    finally:
        provider.shutdown()


def test_missing_packages_are_named_and_the_app_runs_untraced(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, settings: Settings
) -> None:
    # A None entry makes the import fail, as for a package that is not installed.
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.fastapi", None)
    app = FastAPI()
    requested = settings.model_copy(update={"OTEL_TRACES_EXPORTER": "otlp"})
    with caplog.at_level(logging.ERROR, logger="app.core.tracing"):
        assert tracing.install_tracing(app, requested) is None
    assert app.state.tracing is None
    [record] = [record for record in caplog.records if record.name == "app.core.tracing"]
    assert "tasks-api[tracing]" in record.getMessage()
    assert "opentelemetry.instrumentation.fastapi" in record.getMessage()
