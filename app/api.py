"""The one place the versioned API's routers are mounted."""

from fastapi import APIRouter

from app.auth.router import router as auth_router
from app.labels.router import router as labels_router
from app.projects.router import router as projects_router
from app.tasks.router import router as tasks_router
from app.trash.router import router as trash_router
from app.users.router import router as users_router

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(auth_router)
api_router.include_router(users_router)
api_router.include_router(projects_router)
api_router.include_router(labels_router)
api_router.include_router(tasks_router)
api_router.include_router(trash_router)
