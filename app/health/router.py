"""Liveness and readiness probes, outside the versioned API."""

import logging

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from app.core.db import DatabaseDep
from app.core.errors import problem_response, problem_responses
from app.core.routing import AppRouter

logger = logging.getLogger(__name__)

router = AppRouter(prefix="/health", tags=["health"])


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
