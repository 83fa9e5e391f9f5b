"""Quota errors, each with a stable code."""

from app.core.errors import Conflict


class QuotaExceeded(Conflict):
    code = "quota_exceeded"
    detail = "You have as many of these as your account may hold; delete some first."
