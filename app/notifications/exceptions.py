"""Notification errors, each with a stable code."""

from app.core.errors import NotFound


class NotificationNotFound(NotFound):
    code = "notification_not_found"
    detail = "No such notification."
