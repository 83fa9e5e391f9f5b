"""The floor: a bare FastAPI app that returns the list page of 20 tasks from memory.

No database, no auth, no middleware: what the same server (uvicorn, same flags and workers)
and framework cost for a response of the same shape and size as `GET /api/v1/tasks?limit=20`
(`{"items": [...20 tasks...], "next_cursor": null, "total": null}`). Every scenario in
`bench/run.py` is reported as a ratio to this app's requests/s.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI

PAGE_SIZE = 20
_START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
_OWNER = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
_PROJECT = uuid.UUID("00000000-0000-4000-8000-0000000000bb")


def _task(n: int) -> dict[str, Any]:
    created = _START + timedelta(minutes=n)
    return {  # the fields and order of app.tasks.schemas.TaskPublic
        "id": str(uuid.UUID(int=(0x0190_0000_0000_7000_8000_0000_0000_0000 | n))),
        "owner_id": str(_OWNER),
        "project_id": str(_PROJECT),
        "parent_id": None,
        "title": f"Benchmark task {n}",
        "description": "Created by bench/run.py",
        "status": "todo",
        "priority": 0,
        "due_at": None,
        "completed_at": None,
        "position": f"a{n:x}",
        "labels": [],
        "version": 1,
        "created_at": created.isoformat(),
        "updated_at": created.isoformat(),
    }


PAGE: dict[str, Any] = {
    "items": [_task(n) for n in range(PAGE_SIZE)],
    "next_cursor": None,
    "total": None,
}

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/v1/tasks")
async def list_tasks() -> dict[str, Any]:
    """The same page every time, serialised per request like any FastAPI response."""
    return PAGE
