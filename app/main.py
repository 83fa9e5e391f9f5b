"""The application factory: settings, lifespan, middleware, error handlers, routers."""

import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.api import OPENAPI_TAGS, include_api
from app.auth.cache import listen_for_changes, start_principal_cache
from app.auth.service import AuthComponents
from app.bootstrap import ensure_first_admin
from app.core.clock import Clock, wall_clock
from app.core.config import EXAMPLE_SECRET_KEY, Settings, get_settings
from app.core.db import Database, TransactionRoute, create_engine
from app.core.docs import install_docs
from app.core.errors import install_error_handlers
from app.core.logging import REQUEST_ID_PATTERN, access_logger, configure_logging
from app.core.mail import create_mailer
from app.core.metrics import install_metrics, register_database, unregister_database
from app.core.middleware import (
    AccessLogMiddleware,
    BodySizeLimitMiddleware,
    HeadAsGetMiddleware,
    PrivateCacheMiddleware,
    SecurityHeadersMiddleware,
    UnexpectedErrorMiddleware,
)
from app.core.openapi import install_openapi
from app.core.pagination import CursorCodec
from app.core.process import tune_garbage_collector
from app.core.rate_limit import RateLimiter, RateLimitHeadersMiddleware
from app.core.security import PasswordHasher, TokenCodec
from app.core.tracing import Tracing, install_tracing
from app.health.router import index_router
from app.health.router import router as health_router

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

DESCRIPTION = """
A task-management API: accounts, projects, tasks and labels.

Sign in with **Authorize** (email and password); every protected operation then works from
this page. Every error is an RFC 9457 problem document with a stable `code`.
"""


# Response headers a browser app may read across origins (CORS hides the others).
EXPOSED_HEADERS = [
    "ETag",
    "Location",
    "Retry-After",
    "X-Request-ID",
    "RateLimit",
    "RateLimit-Policy",
]

logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


def _sane_request_id(value: str) -> bool:
    # A client's X-Request-ID is kept when it is one (a trace id, a UUID, a job name).
    return _REQUEST_ID.fullmatch(value) is not None


# Connections for rate-limit counters, per process (each counter update holds one briefly).
LIMITER_POOL_SIZE = 6


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the process's resources on start-up and release them on shutdown."""
    settings: Settings = app.state.settings
    clock: Clock | None = app.state.clock
    database = Database(settings, clock=clock or time.monotonic)
    hasher = PasswordHasher(settings)
    # Counters get a small pool of their own: a request that holds a pooled connection must
    # never wait for a second one from the same pool to count a failure; under load that
    # deadlocks the pool. Fixed, like the main pool: overflow connections are closed on
    # return, so a sign-in storm opened a PostgreSQL connection per counter beyond two.
    limiter_engine = create_engine(settings, pool_size=LIMITER_POOL_SIZE, max_overflow=0)
    app.state.database = database
    # /metrics reads this process's pools and read gate (app/core/metrics.py).
    register_database(database, limiter_engine=limiter_engine)
    principals = start_principal_cache(settings, database, clock or time.monotonic)
    app.state.auth = AuthComponents(
        settings=settings,
        hasher=hasher,
        tokens=TokenCodec(settings),
        limiter=RateLimiter(settings, limiter_engine, clock or wall_clock),
        mailer=create_mailer(settings),
        principals=principals,
    )
    app.state.cursors = CursorCodec(settings.SECRET_KEY.get_secret_value())
    listener = await listen_for_changes(settings, principals)
    if settings.SECRET_KEY.get_secret_value() == EXAMPLE_SECRET_KEY:
        # Production refuses to start with it; anywhere else, say so once.
        logger.warning("SECRET_KEY is the example value from .env.example: tokens are forgeable")
    tracing: Tracing | None = app.state.tracing
    if tracing is not None:
        # Both pools' statements (the write engine is a view of the base one, sharing its events).
        tracing.start([database.counter_engine, limiter_engine])
    try:
        await ensure_first_admin(settings, database, hasher)
        if settings.GC_TUNING:
            tune_garbage_collector()
        yield
    finally:
        if tracing is not None:
            tracing.stop()
        if listener is not None:
            await listener.stop()
        await app.state.auth.limiter.aclose()
        hasher.close()
        await limiter_engine.dispose()
        unregister_database(database)
        await database.dispose()


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    tracer_provider: "TracerProvider | None" = None,
) -> FastAPI:
    """Build the app for the given settings (the process's own when none are given).

    `clock`, for tests, replaces the system's clocks in the timers that windows and expiries
    read (rate limits, the principal cache). `tracer_provider`, for tests, turns tracing on
    with that provider (an in-memory exporter) whatever the settings say (app/core/tracing.py).
    """
    settings = settings or get_settings()
    configure_logging(settings)
    docs = settings.docs_enabled
    app = FastAPI(
        title=settings.PROJECT_NAME,
        description=DESCRIPTION,
        version="1.0.0",
        lifespan=lifespan,
        openapi_tags=OPENAPI_TAGS,
        docs_url=None,  # served by install_docs, from local files
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        generate_unique_id_function=lambda route: (
            f"{route.tags[0]}-{route.name}" if route.tags else route.name
        ),
        debug=False,
        # A redirect to the path with(out) its slash would be built from the Host header,
        # which the client writes: an unknown path is a 404 problem like any other.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.clock = clock
    # Routes added to the app itself (docs, tests' probes) get the request's transaction too.
    app.router.route_class = TransactionRoute

    install_error_handlers(app)
    install_openapi(app)

    # Added innermost first: the request id wraps everything so every log line and
    # error carries it, and CORS headers reach error responses too, a 500 included.
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.MAX_REQUEST_BODY_BYTES)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.ENVIRONMENT == "production")
    app.add_middleware(PrivateCacheMiddleware)
    app.add_middleware(RateLimitHeadersMiddleware)
    if settings.CORS_ORIGINS:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[str(origin).rstrip("/") for origin in settings.CORS_ORIGINS],
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "If-None-Match",
                "X-Request-ID",
                "Idempotency-Key",
            ],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    app.add_middleware(AccessLogMiddleware, logger=access_logger())
    app.add_middleware(
        CorrelationIdMiddleware,
        header_name="X-Request-ID",
        validator=_sane_request_id,
    )
    app.add_middleware(HeadAsGetMiddleware)
    if settings.FORWARDED_ALLOW_IPS:
        # Outermost: every layer inside (limits, sessions, the access line) sees the client
        # address the trusted proxy named, and only a trusted proxy's.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.FORWARDED_ALLOW_IPS)

    # Routes are matched in the order they are added, each one tried costing a few
    # microseconds: the API first, then the probes and the docs pages.
    include_api(app)
    app.include_router(health_router)
    app.include_router(index_router)
    if docs:
        install_docs(app, title=settings.PROJECT_NAME)
    # Last: its middleware is the outermost (a request's whole time, whatever answers it) and
    # /metrics the last route tried.
    install_metrics(app, settings)
    # Off (nothing installed) unless the settings or the caller ask for it. It wraps the whole
    # middleware stack, which is built at the first call, so it comes before any.
    install_tracing(app, settings, tracer_provider=tracer_provider)
    return app


app = create_app()
