"""Logging set-up: every line carries the request id of the request that wrote it."""

import logging
import logging.config

from app.core.config import Settings


def configure_logging(settings: Settings) -> None:
    """Configure the root logger once, at start-up."""
    # One access line per request is noise at production volume; errors are still logged.
    access_level = "WARNING" if settings.ENVIRONMENT == "production" else settings.LOG_LEVEL
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {
                "request_id": {
                    "()": "asgi_correlation_id.CorrelationIdFilter",
                    "uuid_length": 32,
                    "default_value": "-",
                }
            },
            "formatters": {
                "default": {
                    "format": "%(asctime)s %(levelname)s [%(correlation_id)s] %(name)s: %(message)s"
                }
            },
            "handlers": {
                "console": {
                    "class": "logging.StreamHandler",
                    "filters": ["request_id"],
                    "formatter": "default",
                }
            },
            "root": {"handlers": ["console"], "level": settings.LOG_LEVEL},
            "loggers": {
                "uvicorn.access": {"level": access_level},
            },
        }
    )
