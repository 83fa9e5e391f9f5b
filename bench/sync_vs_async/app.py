"""One query served two ways: a `def` endpoint on a sync Session (psycopg 3, in FastAPI's
threadpool) and an `async def` endpoint on an AsyncSession (asyncpg). Same table, same query,
same pool size (10, no overflow), same response model.

Reads BENCH_PG_DB (database name) and PG_SERVER_URL (defaults to postgres@127.0.0.1:5432).
"""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import Column, DateTime, Index
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import Field, Session, SQLModel, col, create_engine, select
from sqlmodel.ext.asyncio.session import AsyncSession

SERVER = os.environ.get("PG_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = os.environ.get("BENCH_PG_DB", "bench_sync_vs_async")
BASE_URL = SERVER.rsplit("/", 1)[0] + "/" + DB_NAME
POOL = {"pool_size": 10, "max_overflow": 0, "pool_timeout": 30}
PAGE = 20
# The owner every request reads (seeded with more than PAGE tasks; see run.py).
OWNER_ID = uuid.UUID(os.environ.get("BENCH_OWNER_ID", "00000000-0000-4000-8000-000000000001"))


class Task(SQLModel, table=True):
    __tablename__ = "task"
    __table_args__ = (Index("ix_task_owner_created", "owner_id", "created_at"),)

    id: uuid.UUID = Field(primary_key=True)
    owner_id: uuid.UUID = Field(nullable=False)
    title: str = Field(nullable=False)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class TaskOut(BaseModel):
    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    created_at: datetime


QUERY = (
    select(Task).where(col(Task.owner_id) == OWNER_ID).order_by(col(Task.created_at)).limit(PAGE)
)

sync_engine = create_engine(BASE_URL.replace("postgresql://", "postgresql+psycopg://", 1), **POOL)
async_engine = create_async_engine(
    BASE_URL.replace("postgresql://", "postgresql+asyncpg://", 1), **POOL
)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    sync_engine.dispose()
    await async_engine.dispose()


app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/sync/tasks", response_model=list[TaskOut])
def sync_tasks() -> list[Task]:
    with Session(sync_engine) as session:
        return list(session.exec(QUERY).all())


@app.get("/async/tasks", response_model=list[TaskOut])
async def async_tasks() -> list[Task]:
    async with AsyncSession(async_engine) as session:
        return list((await session.exec(QUERY)).all())
