"""Typed settings, read once from the environment and an optional `.env` file.

Application code never reads `os.environ`: `create_app()` takes a `Settings` object (by
default `get_settings()`, the process-wide one) and hands it to what needs it through
`app.state` (the lifespan's components), so tests can build an app with any settings.
"""

from functools import lru_cache
from typing import Annotated, Literal, Self

from fastapi import Depends, Request
from pydantic import (
    AnyHttpUrl,
    EmailStr,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The SECRET_KEY shipped in .env.example; production refuses to start with it.
EXAMPLE_SECRET_KEY = "change-me-this-is-the-example-secret-key-do-not-use"  # noqa: S105

Environment = Literal["development", "test", "production"]
# Where the web app runs in development (Vite's port): never the address of a real deployment.
DEVELOPMENT_FRONTEND_URL = "http://localhost:5173"


class Settings(BaseSettings):
    """Every setting the service reads. `.env.example` documents each one (a test checks)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=True,
        extra="ignore",
        frozen=True,
        # `FIRST_ADMIN_EMAIL=` in a .env file means "not set", as in .env.example.
        env_ignore_empty=True,
    )

    ENVIRONMENT: Environment = "development"
    PROJECT_NAME: str = "Tasks API"
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    DOCS_ENABLED: bool = True

    DATABASE_URL: str = "sqlite:///./tasks.db"
    # A fixed pool: SQLAlchemy closes an overflow connection as soon as it is returned while
    # the pool is full, so steady load above the pool size opens and closes a PostgreSQL
    # connection (a backend started with cold caches) per request beyond it
    # (docs/performance.md).
    DB_POOL_SIZE: int = Field(default=20, ge=1, le=200)
    DB_MAX_OVERFLOW: int = Field(default=0, ge=0, le=200)
    # Every wait on the database is bounded on the client's side (a stalled network answers
    # nothing, so a server-side timeout alone would not end it); past a bound the request is a
    # 503 `database_unavailable`. Requests use these; CLI jobs (purge) use the CLI bound.
    DB_POOL_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0, le=600)
    DB_CONNECT_TIMEOUT_SECONDS: float = Field(default=3.0, gt=0, le=600)
    DB_STATEMENT_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0, le=3600)
    DB_CLI_STATEMENT_TIMEOUT_SECONDS: float = Field(default=600.0, gt=0, le=86400)
    DB_ECHO: bool = False

    SECRET_KEY: SecretStr = SecretStr(EXAMPLE_SECRET_KEY)
    JWT_ALGORITHM: Literal["HS256", "RS256"] = "HS256"
    JWT_PRIVATE_KEY: SecretStr | None = None
    JWT_PUBLIC_KEY: str | None = None
    JWT_ISSUER: str = "tasks-api"
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=15, ge=1, le=24 * 60)
    REFRESH_TOKEN_EXPIRE_DAYS: int = Field(default=14, ge=1, le=365)
    # Seconds in which the refresh token just replaced still gets its successor (two tabs or
    # a retry refreshing at once), instead of revoking the session as a stolen token does.
    REFRESH_REUSE_GRACE_SECONDS: int = Field(default=10, ge=0, le=300)
    PASSWORD_RESET_EXPIRE_MINUTES: int = Field(default=30, ge=1, le=24 * 60)

    ARGON2_MEMORY_KIB: int = Field(default=19456, ge=8)
    ARGON2_TIME_COST: int = Field(default=2, ge=1)
    ARGON2_PARALLELISM: int = Field(default=1, ge=1)
    # Per process. One hash thread next to the event loop: with a worker per core, hashing
    # can never take every core (docs/performance.md, the sign-in storm).
    PASSWORD_HASH_CONCURRENCY: int = Field(default=1, ge=1, le=64)
    # After start-up: freeze the start-up heap and collect garbage rarely (app/core/process.py).
    GC_TUNING: bool = True
    # PostgreSQL only: how long a verified (session, user) pair may be reused without asking
    # the database. Every change to an account or a session is announced by the database
    # (LISTEN/NOTIFY) and drops it at once in every process; this is the bound if an
    # announcement is ever missed. 0 checks the database on every request.
    AUTH_CACHE_SECONDS: int = Field(default=30, ge=0, le=300)
    AUTH_CACHE_USERS: int = Field(default=10_000, ge=1, le=1_000_000)

    CORS_ORIGINS: Annotated[list[AnyHttpUrl], NoDecode] = []
    MAX_REQUEST_BODY_BYTES: int = Field(default=1_048_576, ge=1024)

    FIRST_ADMIN_EMAIL: EmailStr | None = None
    FIRST_ADMIN_PASSWORD: SecretStr | None = None

    RATE_LIMIT_ENABLED: bool = True
    RATE_LIMIT_STORAGE_URL: str | None = None
    # Sign-in attempts are counted before the password is checked. The strict limit is per
    # account and client address, so a stranger elsewhere cannot lock the owner out; the
    # account-wide ceiling stops guessing spread over many addresses.
    LOGIN_MAX_FAILURES_PER_ACCOUNT: int = Field(default=5, ge=1)
    LOGIN_MAX_ATTEMPTS_PER_ACCOUNT: int = Field(default=100, ge=1)
    LOGIN_MAX_FAILURES_PER_IP: int = Field(default=20, ge=1)
    LOGIN_FAILURE_WINDOW_SECONDS: int = Field(default=900, ge=1)
    REGISTER_MAX_PER_IP: int = Field(default=10, ge=1)
    REGISTER_WINDOW_SECONDS: int = Field(default=3600, ge=1)
    RECOVERY_MAX_PER_IP: int = Field(default=5, ge=1)
    # Per email and client address; the email-wide ceiling stops mail bombing from many.
    RECOVERY_MAX_PER_EMAIL: int = Field(default=3, ge=1)
    RECOVERY_MAX_PER_EMAIL_ALL_ADDRESSES: int = Field(default=20, ge=1)
    RECOVERY_WINDOW_SECONDS: int = Field(default=3600, ge=1)

    MAIL_BACKEND: Literal["console", "smtp", "memory"] | None = None
    MAIL_FROM: EmailStr = "no-reply@example.com"
    SMTP_HOST: str | None = None
    SMTP_PORT: int = Field(default=587, ge=1, le=65535)
    SMTP_USER: str | None = None
    SMTP_PASSWORD: SecretStr | None = None
    SMTP_STARTTLS: bool = True
    FRONTEND_URL: AnyHttpUrl = AnyHttpUrl(DEVELOPMENT_FRONTEND_URL)
    # Off: password recovery answers 403 `password_recovery_disabled` (a deployment without
    # mail, such as the benchmark's). On in production, it needs SMTP and a real FRONTEND_URL.
    PASSWORD_RECOVERY_ENABLED: bool = True

    TRASH_RETENTION_DAYS: int = Field(default=30, ge=1, le=3650)
    # The most of each one account may hold (trashed rows count until they are purged). The
    # defaults leave room for the benchmark's 1,000,000-task account.
    QUOTA_TASKS: int = Field(default=5_000_000, ge=1)
    QUOTA_PROJECTS: int = Field(default=10_000, ge=1)
    QUOTA_LABELS: int = Field(default=10_000, ge=1)

    @field_validator("CORS_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # Accept "a,b" as well as a JSON list, so the value reads naturally in a .env file.
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                import json

                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("DATABASE_URL")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError("DATABASE_URL must be a sqlite:// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _safe_for_production(self) -> Self:
        secret = self.SECRET_KEY.get_secret_value()
        if self.ENVIRONMENT == "production":
            if secret == EXAMPLE_SECRET_KEY:
                raise ValueError("SECRET_KEY is the example value; set a real secret in production")
            if len(secret.encode()) < 32:
                raise ValueError("SECRET_KEY must be at least 32 bytes in production")
        if self.JWT_ALGORITHM == "RS256" and not (self.JWT_PRIVATE_KEY and self.JWT_PUBLIC_KEY):
            raise ValueError("JWT_ALGORITHM=RS256 needs JWT_PRIVATE_KEY and JWT_PUBLIC_KEY")
        if (self.FIRST_ADMIN_EMAIL is None) != (self.FIRST_ADMIN_PASSWORD is None):
            raise ValueError("FIRST_ADMIN_EMAIL and FIRST_ADMIN_PASSWORD go together")
        if self.MAIL_BACKEND == "smtp" and not self.SMTP_HOST:
            raise ValueError("MAIL_BACKEND=smtp needs SMTP_HOST")
        if self.ENVIRONMENT == "production" and self.PASSWORD_RECOVERY_ENABLED:
            # Reset links must reach the account's mailbox only, never a log.
            if self.mail_backend != "smtp":
                raise ValueError(
                    "production with password recovery needs mail: set MAIL_BACKEND=smtp and"
                    " SMTP_HOST (reset links are never written to the log), or"
                    " PASSWORD_RECOVERY_ENABLED=false"
                )
            if str(self.FRONTEND_URL).rstrip("/") == DEVELOPMENT_FRONTEND_URL:
                raise ValueError(
                    "production with password recovery needs FRONTEND_URL (reset links point"
                    f" there; {DEVELOPMENT_FRONTEND_URL} is the development default), or"
                    " PASSWORD_RECOVERY_ENABLED=false"
                )
        return self

    @property
    def is_postgres(self) -> bool:
        return self.DATABASE_URL.startswith(("postgresql", "postgres"))

    @property
    def async_database_url(self) -> str:
        """The URL with the async driver this service uses (asyncpg or aiosqlite)."""
        scheme, rest = self.DATABASE_URL.split(":", 1)
        if scheme.startswith("sqlite"):
            return "sqlite+aiosqlite:" + rest
        return "postgresql+asyncpg:" + rest

    @property
    def mail_backend(self) -> str:
        if self.MAIL_BACKEND:
            return self.MAIL_BACKEND
        if self.ENVIRONMENT == "test":
            return "memory"
        return "smtp" if self.SMTP_HOST else "console"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; a wrong value fails here, at start, naming the setting."""
    return Settings()


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with (`create_app`'s, in tests not the process's)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
