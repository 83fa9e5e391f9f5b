"""Optional OpenTelemetry tracing: a server span per request, a client span per SQL statement.

Off unless `OTEL_TRACES_EXPORTER` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set (or a test passes
a tracer provider): then nothing is imported or installed, and requests pay nothing. The
packages are the `tracing` extra (`pip install 'tasks-api[tracing]'`); if tracing is asked
for without them, start-up logs an error naming the extra and the service runs untraced.

What is traced, each with this app's provider passed explicitly (the global provider stays
unset, so several apps in one process, as in the tests, keep their spans apart, and
FastAPI's own telemetry, which follows the global provider, stays off):

- requests, by the FastAPI instrumentation, named by route template (`GET /api/v1/tasks`),
  without its per-message ASGI `receive`/`send` spans (a third of its cost) and without the
  probes and the metrics scrape;
- on PostgreSQL, every statement by the asyncpg instrumentation: SQLAlchemy's (which asyncpg
  runs as prepared statements), the prebuilt reads that skip SQLAlchemy
  (app/core/db/driver_query.py), BEGIN and COMMIT. SQLAlchemy's engine instrumentation is
  not added there, as it would trace every ORM statement a second time;
- on SQLite, every statement by SQLAlchemy's engine instrumentation, on the app's engines.
"""

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

logger = logging.getLogger(__name__)

EXTRA = "tasks-api[tracing]"
# Regular expressions the instrumentation matches against `scheme://host/path` (comma-
# separated): probes and scrapes arrive every few seconds and say nothing about the service.
EXCLUDED_URLS = r"^https?://[^/]*/health/,^https?://[^/]*/metrics$"
# The OTLP/HTTP path of traces under OTEL_EXPORTER_OTLP_ENDPOINT (the specification's).
OTLP_TRACES_PATH = "v1/traces"
DEFAULT_OTLP_ENDPOINT = "http://localhost:4318"

# The asyncpg instrumentation patches asyncpg itself, once per process: the providers of the
# traced apps running now, the latest last; asyncpg's spans go to the latest.
_asyncpg_providers: list["TracerProvider"] = []
# Traced apps running now: the FastAPI instrumentation's process-wide patch of background
# tasks is undone when the last one stops.
_running: list["Tracing"] = []


def tracing_requested(settings: Settings) -> bool:
    """Whether the settings turn tracing on (an exporter or an OTLP endpoint, not `none`)."""
    if settings.OTEL_TRACES_EXPORTER == "none":
        return False
    return (
        settings.OTEL_TRACES_EXPORTER is not None
        or settings.OTEL_EXPORTER_OTLP_ENDPOINT is not None
    )


class Tracing:
    """One app's tracing: its provider, and what the lifespan instruments with it."""

    def __init__(self, provider: "TracerProvider", *, postgres: bool, owned: bool) -> None:
        self.provider = provider
        self.postgres = postgres
        # Built here from the settings (flushed at shutdown) or a caller's (the caller's own).
        self.owned = owned
        self._engine_tracers: list[Any] = []

    def start(self, engines: Iterable[AsyncEngine]) -> None:
        """Trace the statements of the app's engines (the lifespan's start-up)."""
        _running.append(self)
        if self.postgres:
            _asyncpg_providers.append(self.provider)
            _instrument_asyncpg(self.provider)
            return
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.instrumentation.sqlalchemy.version import __version__ as version
        from opentelemetry.metrics import NoOpMeterProvider

        tracer = self.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy", version)
        # The instrumentor would also wrap every engine the process creates, and connect();
        # the engine tracer listens to the one engine it is given. No metrics: none are read.
        usage = NoOpMeterProvider().get_meter(__name__).create_up_down_counter("unused")
        for engine in engines:
            # Unannotated upstream (as is AsyncPGInstrumentor below).
            traced = EngineTracer(tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]
            self._engine_tracers.append(traced)

    def stop(self) -> None:
        """Undo `start` and send what is buffered (the lifespan's shutdown)."""
        if self in _running:
            _running.remove(self)
        if self.postgres and self.provider in _asyncpg_providers:
            _asyncpg_providers.remove(self.provider)
            _instrument_asyncpg(_asyncpg_providers[-1] if _asyncpg_providers else None)
        self._engine_tracers.clear()
        if not _running:
            _restore_background_tasks()
        if self.owned:
            flush = getattr(self.provider, "force_flush", None)
            if flush is not None:
                flush()


def install_tracing(
    app: FastAPI, settings: Settings, *, tracer_provider: "TracerProvider | None" = None
) -> Tracing | None:
    """Trace the app's requests if the settings ask for it, or with `tracer_provider` if given
    (tests pass one with an in-memory exporter). Call before the app serves its first request.

    Returns the app's `Tracing`, also kept as `app.state.tracing`, whose `start` the lifespan
    calls with its engines; None (and nothing installed) when tracing is off.
    """
    app.state.tracing = None
    if tracer_provider is None and not tracing_requested(settings):
        return None
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        if settings.is_postgres:
            import opentelemetry.instrumentation.asyncpg
        else:
            import opentelemetry.instrumentation.sqlalchemy  # noqa: F401
        provider = tracer_provider or build_tracer_provider(settings)
    except ImportError as error:
        logger.error(
            "Tracing is configured (OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_ENDPOINT) but"
            " its packages are not installed (%s): install the extra, pip install '%s'."
            " Running without tracing.",
            error.name,
            EXTRA,
        )
        return None
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
    )
    tracing = Tracing(provider, postgres=settings.is_postgres, owned=tracer_provider is None)
    app.state.tracing = tracing
    return tracing


def build_tracer_provider(settings: Settings) -> "TracerProvider":
    """The provider the settings describe: batched export over OTLP/HTTP (protobuf), or to
    standard output with `OTEL_TRACES_EXPORTER=console`."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.OTEL_SERVICE_NAME}))
    exporter: SpanExporter
    if settings.OTEL_TRACES_EXPORTER == "console":
        exporter = ConsoleSpanExporter()
    else:
        base = str(settings.OTEL_EXPORTER_OTLP_ENDPOINT or DEFAULT_OTLP_ENDPOINT)
        exporter = OTLPSpanExporter(endpoint=f"{base.rstrip('/')}/{OTLP_TRACES_PATH}")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _instrument_asyncpg(provider: "TracerProvider | None") -> None:
    """Point asyncpg's instrumentation at `provider`, or take it out for None."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    # A singleton: instrument() on an instrumented one is ignored, so switch by undoing first.
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    if provider is not None:
        instrumentor.instrument(tracer_provider=provider)


def _restore_background_tasks() -> None:
    """Undo the FastAPI instrumentation's process-wide wrapping of background tasks (made
    with the first traced app's tracer), as its `uninstrument_app` does, without
    uninstrumenting an app."""
    from starlette.background import BackgroundTask

    original = getattr(BackgroundTask, "_otel_original_call", None)
    if original is not None:
        BackgroundTask.__call__ = original  # type: ignore[method-assign]
        delattr(BackgroundTask, "_otel_original_call")
