"""Task errors, each with a stable code."""

from app.core.errors import Conflict, NotFound, ReferenceNotFound, UnprocessableEntity


class TaskNotFound(NotFound):
    code = "task_not_found"
    detail = "No such task."


class ParentNotFound(ReferenceNotFound):
    detail = "You have no such task to be the parent (`parent_id`)."
    loc = ("body", "parent_id")


NO_SUCH_PROJECT = "You have no such project."


class AnchorNotFound(ReferenceNotFound):
    detail = "You have no such task in this project to place this one next to."


class TaskCycle(UnprocessableEntity):
    code = "task_cycle"
    detail = "A task cannot be its own ancestor."
    loc = ("body", "parent_id")


class TaskTooDeep(UnprocessableEntity):
    code = "task_too_deep"
    detail = "Subtasks nest too deeply."
    loc = ("body", "parent_id")


class SubtaskProjectMismatch(UnprocessableEntity):
    code = "subtask_project_mismatch"
    detail = "A subtask stays in its parent's project; clear `parent_id` to move it elsewhere."
    loc = ("body", "project_id")


class TooManyLabels(UnprocessableEntity):
    code = "too_many_labels"
    detail = "A task carries too many labels."
    loc = ("body", "label_ids")


class InvalidMove(UnprocessableEntity):
    code = "invalid_move"
    detail = "The task to move next to is not in the same project, or is the task itself."


class TaskNotInTrash(Conflict):
    code = "task_not_in_trash"
    detail = "The task is not in the trash."


class RestoreTooDeep(Conflict):
    code = "restore_too_deep"
    detail = (
        "Back under its parent, the task and its subtasks would nest too deeply; move the"
        " parent higher up first."
    )


class ContainerInTrash(Conflict):
    code = "container_in_trash"
    detail = "The task's project or parent task is in the trash; restore that first."
