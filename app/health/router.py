"""Liveness and readiness probes, outside the versioned API."""

import logging

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from app.core.config import SettingsDep
from app.core.db import DatabaseDep
from app.core.errors import problem_response, problem_responses
from app.core.routing import AppRouter

logger = logging.getLogger(__name__)

router = AppRouter(prefix="/health", tags=["health"])
# The root: what a newcomer (or a script) finds first.
index_router = AppRouter(tags=["health"])


class HealthStatus(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"status": "ok"}},
        json_schema_serialization_defaults_required=True,
    )

    status: str


@router.get("/live", summary="Liveness probe", response_model=HealthStatus)
async def live() -> HealthStatus:
    """Answer 200 while the process serves requests; touches nothing else."""
    return HealthStatus(status="ok")


@router.get(
    "/ready",
    summary="Readiness probe",
    response_model=HealthStatus,
    responses=problem_responses(503),
)
async def ready(database: DatabaseDep) -> HealthStatus | JSONResponse:
    """Answer 200 when the database answers a query, 503 with the reason when it does not."""
    try:
        await database.ping()
    except Exception as exc:  # any failure to reach the database means "not ready"
        logger.warning("readiness check failed: %s", type(exc).__name__)
        return problem_response(
            503, "database_unavailable", f"The database is unreachable ({type(exc).__name__})."
        )
    return HealthStatus(status="ok")


class IndexLinks(BaseModel):
    api: str
    docs: str | None
    openapi: str | None
    live: str
    ready: str


class ApiIndex(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "name": "Tasks API",
                "version": "1.0.0",
                "links": {
                    "api": "/api/v1",
                    "docs": "/docs",
                    "openapi": "/openapi.json",
                    "live": "/health/live",
                    "ready": "/health/ready",
                },
            }
        },
        json_schema_serialization_defaults_required=True,
    )

    name: str
    version: str
    links: IndexLinks


@index_router.get("/", summary="API index", response_model=ApiIndex)
async def index(request: Request, settings: SettingsDep) -> ApiIndex:
    """Name the service and link its API, documentation and probes (docs links are null
    where the docs are off, as in production by default)."""
    docs = settings.docs_enabled
    return ApiIndex(
        name=settings.PROJECT_NAME,
        version=request.app.version,
        links=IndexLinks(
            api="/api/v1",
            docs="/docs" if docs else None,
            openapi="/openapi.json" if docs else None,
            live="/health/live",
            ready="/health/ready",
        ),
    )
