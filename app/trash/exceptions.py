"""Trash errors, each with a stable code."""

from app.core.errors import ServiceUnavailable


class PurgeInterrupted(ServiceUnavailable):
    code = "purge_interrupted"
    detail = "The trash kept changing while it was being purged; run the purge again."
