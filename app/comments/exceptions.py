"""Comment errors, each with a stable code."""

from app.core.errors import Forbidden, NotFound


class CommentNotFound(NotFound):
    code = "comment_not_found"
    detail = "No such comment."


class NotCommentAuthor(Forbidden):
    code = "not_comment_author"
    detail = "Only its author may change a comment (and its project's owner delete it)."
