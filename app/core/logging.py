"""Logging: structlog for every line (the app's, the libraries' and uvicorn's), with the
request id of the request that wrote it; JSON lines in production, readable lines elsewhere.

Two ways in, one format: `access_logger()` (structlog's own logger, the per-request line,
cheap enough for every request) and the standard library's loggers (app modules, uvicorn,
SQLAlchemy), whose records go through structlog's ProcessorFormatter with the same processors.
"""

import logging
import logging.config
import sys
from typing import Any

import orjson
import structlog
from asgi_correlation_id import correlation_id
from structlog.typing import EventDict, Processor, WrappedLogger

from app.core.config import Settings

# What the request-id middleware keeps from a client's X-Request-ID (anything else is
# replaced by a generated id): long enough for a trace id or a UUID, nothing to escape.
REQUEST_ID_PATTERN = r"[A-Za-z0-9._-]{1,128}"


def _add_request_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    request_id = correlation_id.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def _json(event: EventDict, **_: Any) -> str:
    # orjson: a few microseconds a line, against tens for json.dumps with default=str.
    return orjson.dumps(event, default=str).decode()


def _processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _renderer(settings: Settings) -> Processor:
    default = "json" if settings.ENVIRONMENT == "production" else "console"
    if (settings.LOG_FORMAT or default) == "json":
        return structlog.processors.JSONRenderer(serializer=_json)
    return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())


def configure_logging(settings: Settings) -> None:
    """Configure structlog and the standard library's root logger, at start-up."""
    level = logging.getLevelNamesMapping()[settings.LOG_LEVEL]
    renderer = _renderer(settings)
    structlog.configure(
        processors=[
            *_processors(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        # Reconfigured by every app a test builds; the access logger is bound once per app.
        cache_logger_on_first_use=False,
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structlog": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "foreign_pre_chain": [
                        *_processors(),
                        structlog.stdlib.add_logger_name,
                        structlog.stdlib.ExtraAdder(),
                    ],
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        renderer,
                    ],
                }
            },
            "handlers": {
                "console": {
                    "class": "logging.StreamHandler",
                    "stream": sys.stderr,
                    "formatter": "structlog",
                }
            },
            "root": {"handlers": ["console"], "level": settings.LOG_LEVEL},
            "loggers": {
                # Uvicorn's own handlers (from its log config) go: its lines reach the root
                # handler, in this format. Its access log runs after the request's context is
                # gone (no request id, no route): the app writes its own (`access_logger`).
                "uvicorn": {"handlers": [], "propagate": True},
                "uvicorn.error": {"handlers": [], "propagate": True},
                "uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
            },
        }
    )


def access_logger() -> Any:
    """The logger of the per-request access line, resolved now (call after configuring)."""
    return structlog.get_logger("access").bind()
