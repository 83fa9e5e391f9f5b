"""The one place the versioned API's routers are listed."""

from fastapi import APIRouter, FastAPI

from app.activity.router import router as activity_router
from app.auth.router import router as auth_router
from app.comments.router import router as comments_router
from app.labels.router import router as labels_router
from app.notifications.router import router as notifications_router
from app.projects.router import router as projects_router
from app.sharing.router import router as sharing_router
from app.tasks.router import router as tasks_router
from app.trash.router import router as trash_router
from app.users.router import router as users_router

API_PREFIX = "/api/v1"
# Busiest first: a request is matched against each router's routes in this order, and every
# route tried costs a few microseconds. The order people read them in is `OPENAPI_TAGS`.
API_ROUTERS: tuple[APIRouter, ...] = (
    tasks_router,
    users_router,
    projects_router,
    labels_router,
    auth_router,
    trash_router,
    sharing_router,
    activity_router,
    notifications_router,
    comments_router,
)
OPENAPI_TAGS = [
    {"name": "auth", "description": "Sign up, sign in, tokens, sessions and password recovery."},
    {"name": "users", "description": "Your account; other accounts for admins."},
    {"name": "projects", "description": "Projects hold tasks; every account has an Inbox."},
    {"name": "sharing", "description": "Members, roles and invitations of shared projects."},
    {"name": "activity", "description": "Who changed what, and when: the change log's view."},
    {"name": "labels", "description": "Labels to tag tasks with."},
    {"name": "tasks", "description": "Tasks and subtasks: filters, order, bulk changes."},
    {"name": "notifications", "description": "What others did that concerns you."},
    {"name": "comments", "description": "Comments on tasks."},
    {"name": "trash", "description": "Deleted projects and tasks, until they are purged."},
    {"name": "health", "description": "Liveness and readiness probes."},
]


def include_api(app: FastAPI) -> None:
    """Mount every area's router under the version prefix.

    Each router is included in the app directly rather than through one `/api/v1` router:
    every level of included routers matches the path again on each request
    (docs/performance.md).
    """
    for router in API_ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
