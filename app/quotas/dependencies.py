"""The configured quotas, for routes that create what they count."""

from typing import Annotated

from fastapi import Depends

from app.core.config import SettingsDep
from app.quotas.service import Quotas


async def get_quotas(settings: SettingsDep) -> Quotas:
    """The quotas of the app's settings."""
    return Quotas.of(settings)


QuotasDep = Annotated[Quotas, Depends(get_quotas)]
