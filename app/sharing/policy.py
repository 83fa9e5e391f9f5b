"""Authorization, in one place: may this account do this action in this project?

Routers and services ask `check`; nothing else compares roles. An account that is neither
the project's owner nor a member gets exactly what a missing project gets (404), so a
stranger learns nothing; a member whose role is too low gets 403 `role_too_low`.
"""

from enum import StrEnum

from app.core.errors import NotFound
from app.projects.exceptions import ProjectNotFound
from app.sharing.exceptions import OwnerCannotLeave, RoleTooLow
from app.sharing.models import Role


class Action(StrEnum):
    """Everything an endpoint may ask about a project."""

    READ = "read"  # the project, its tasks, members and activity
    COMMENT = "comment"
    EDIT_TASKS = "edit_tasks"  # create, change, complete, move, delete, restore; their labels
    MANAGE_PROJECT = "manage_project"  # rename, archive, delete and restore the project
    MANAGE_MEMBERS = "manage_members"  # invite, change roles, remove members, withdraw
    TRANSFER = "transfer"
    LEAVE = "leave"


ALLOWED: dict[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action) - {Action.LEAVE},
    Role.EDITOR: frozenset({Action.READ, Action.COMMENT, Action.EDIT_TASKS, Action.LEAVE}),
    Role.VIEWER: frozenset({Action.READ, Action.COMMENT, Action.LEAVE}),
}


def allows(role: Role | None, action: Action) -> bool:
    """Whether `role` (None: no access at all) may do `action`."""
    return role is not None and action in ALLOWED[role]


def check(role: Role | None, action: Action, *, missing: type[NotFound] = ProjectNotFound) -> None:
    """Nothing if `role` may do `action`; otherwise the problem the caller must get (no role
    at all: `missing`, what a row that does not exist gets)."""
    if role is None:
        raise missing()
    if action in ALLOWED[role]:
        return
    if action is Action.LEAVE:
        raise OwnerCannotLeave()
    raise RoleTooLow(extra={"role": role.value, "action": action.value})
