"""The one place the versioned API's routers are mounted."""

from fastapi import APIRouter

api_router = APIRouter(prefix="/api/v1")
