"""Project errors, each with a stable code."""

from app.core.errors import Conflict, NotFound


class ProjectNotFound(NotFound):
    code = "project_not_found"
    detail = "No such project."


class InboxUndeletable(Conflict):
    code = "inbox_undeletable"
    detail = "The Inbox cannot be deleted."


class InboxUnarchivable(Conflict):
    code = "inbox_unarchivable"
    detail = "The Inbox cannot be archived."


class ProjectNotInTrash(Conflict):
    code = "project_not_in_trash"
    detail = "The project is not in the trash."
