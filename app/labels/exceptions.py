"""Label errors, each with a stable code."""

from app.core.errors import Conflict, NotFound


class LabelNotFound(NotFound):
    code = "label_not_found"
    detail = "No such label."


class LabelNameTaken(Conflict):
    code = "label_name_taken"
    detail = "You already have a label with this name (names ignore case)."
