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

# Development's throttle defaults (an explicit setting still wins): see _development_throttles.
DEVELOPMENT_THROTTLES = {
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": 50,
    "LOGIN_MAX_FAILURES_PER_IP": 500,
    "REGISTER_MAX_PER_IP": 1000,
    "REGISTER_MAX_PER_EMAIL": 100,
    "RECOVERY_MAX_PER_IP": 100,
    "RECOVERY_MAX_PER_EMAIL": 30,
    "VERIFY_RESEND_MAX_PER_IP": 100,
    "VERIFY_RESEND_MAX_PER_EMAIL": 30,
}


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
    # Any case ("warning", as uvicorn spells it).
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # JSON lines (for a log pipeline) or readable lines; unset: JSON in production only.
    LOG_FORMAT: Literal["json", "console"] | None = None
    # /docs, /redoc and /openapi.json; unset: on except in production.
    DOCS_ENABLED: bool | None = None
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto the app believes (comma-separated
    # addresses or networks, `*` for any; Uvicorn's name). None by default: the client address
    # is the connection's, so no caller can write its own into rate limits or sessions.
    FORWARDED_ALLOW_IPS: Annotated[list[str], NoDecode] = []

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

    # `tasks-api serve` (Uvicorn), per worker unless said otherwise. WEB_CONCURRENCY is the
    # name Uvicorn and Gunicorn read for the number of worker processes. On SIGTERM a worker
    # stops accepting, lets requests in flight finish for SHUTDOWN_GRACE_SECONDS, then cancels
    # the rest. Past SERVE_LIMIT_CONCURRENCY connections and requests a worker answers 503.
    WEB_CONCURRENCY: int = Field(default=1, ge=1, le=256)
    SHUTDOWN_GRACE_SECONDS: int = Field(default=20, ge=1, le=3600)
    SERVE_KEEP_ALIVE_SECONDS: int = Field(default=5, ge=1, le=3600)
    SERVE_LIMIT_CONCURRENCY: int = Field(default=2048, ge=1, le=1_000_000)
    SERVE_BACKLOG: int = Field(default=2048, ge=1, le=65535)

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
    # How long a mailed link confirming an address works (sign-up, a new email, a resend).
    EMAIL_VERIFICATION_EXPIRE_MINUTES: int = Field(default=60, ge=1, le=7 * 24 * 60)

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
    # Sign-ups naming one email, from every address: each mails that address (a link, or
    # "you already have an account"), so this bounds the mail anyone can send to a mailbox.
    REGISTER_MAX_PER_EMAIL: int = Field(default=5, ge=1)
    REGISTER_WINDOW_SECONDS: int = Field(default=3600, ge=1)
    RECOVERY_MAX_PER_IP: int = Field(default=5, ge=1)
    # Per email and client address; the email-wide ceiling stops mail bombing from many.
    RECOVERY_MAX_PER_EMAIL: int = Field(default=3, ge=1)
    RECOVERY_MAX_PER_EMAIL_ALL_ADDRESSES: int = Field(default=20, ge=1)
    RECOVERY_WINDOW_SECONDS: int = Field(default=3600, ge=1)
    # New confirmation links (POST /auth/verify/resend): per client address, and per email
    # and client address, like recovery's.
    VERIFY_RESEND_MAX_PER_IP: int = Field(default=5, ge=1)
    VERIFY_RESEND_MAX_PER_EMAIL: int = Field(default=3, ge=1)
    # Per email from every address: the ceiling that stops flooding a mailbox from many.
    VERIFY_RESEND_MAX_PER_EMAIL_ALL_ADDRESSES: int = Field(default=20, ge=1)
    VERIFY_RESEND_WINDOW_SECONDS: int = Field(default=3600, ge=1)

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
    # Whether an address must be confirmed by a mailed link (at sign-up and on a change)
    # before the account may share projects; unset: on in production only. Off, new accounts
    # and new addresses count as confirmed at once. On in production, it needs SMTP and a real
    # FRONTEND_URL, as recovery does.
    EMAIL_VERIFICATION_ENABLED: bool | None = None

    TRASH_RETENTION_DAYS: int = Field(default=30, ge=1, le=3650)
    # The most of each one account may hold (trashed rows count until they are purged). The
    # defaults leave room for the benchmark's 1,000,000-task account.
    QUOTA_TASKS: int = Field(default=5_000_000, ge=1)
    QUOTA_PROJECTS: int = Field(default=10_000, ge=1)
    QUOTA_LABELS: int = Field(default=10_000, ge=1)
    # Sharing (app/sharing/): members plus pending invitations of one project, projects shared
    # with one account, invitations one account has waiting, and how long an invitation lives.
    PROJECT_MEMBERS_MAX: int = Field(default=100, ge=1, le=10_000)
    SHARED_PROJECTS_PER_USER_MAX: int = Field(default=1_000, ge=1, le=100_000)
    PENDING_INVITATIONS_PER_INVITER_MAX: int = Field(default=200, ge=1, le=100_000)
    INVITATION_EXPIRE_HOURS: int = Field(default=7 * 24, ge=1, le=90 * 24)
    # Comments one task may hold.
    COMMENTS_PER_TASK_MAX: int = Field(default=1_000, ge=1, le=100_000)

    # OpenTelemetry tracing (app/core/tracing.py, the `tracing` extra), under the standard
    # names: off unless an exporter or an OTLP endpoint is set. OTLP goes over HTTP
    # (protobuf) to <endpoint>/v1/traces; `none` turns it off whatever else is set. The SDK
    # reads its other OTEL_* variables (headers, timeouts, batching) itself.
    OTEL_TRACES_EXPORTER: Literal["otlp", "console", "none"] | None = None
    OTEL_EXPORTER_OTLP_ENDPOINT: AnyHttpUrl | None = None
    OTEL_SERVICE_NAME: str = Field(default="tasks-api", min_length=1)

    # Prometheus metrics at /metrics (app/core/metrics.py). Without a token the page is open in
    # development only and a 404 elsewhere; with one, every scrape must bear it. The directory
    # is where several workers' counters meet (`tasks-api serve --workers N` prepares it);
    # unset, serve makes a fresh one under the system's temporary directory.
    METRICS_ENABLED: bool = True
    METRICS_TOKEN: SecretStr | None = None
    METRICS_MULTIPROCESS_DIR: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _development_throttles(cls, data: object) -> object:
        # In development the throttles stay on but loose enough to click through /docs (the
        # counters live in the database, so a strict hourly sign-up limit outlived restarts).
        if isinstance(data, dict) and data.get("ENVIRONMENT", "development") == "development":
            return {**DEVELOPMENT_THROTTLES, **data}
        return data

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("CORS_ORIGINS", "FORWARDED_ALLOW_IPS", mode="before")
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
        if self.JWT_ALGORITHM == "RS256" and not (self.JWT_PRIVATE_KEY and self.JWT_PUBLIC_KEY):
            raise ValueError("JWT_ALGORITHM=RS256 needs JWT_PRIVATE_KEY and JWT_PUBLIC_KEY")
        if (self.FIRST_ADMIN_EMAIL is None) != (self.FIRST_ADMIN_PASSWORD is None):
            raise ValueError("FIRST_ADMIN_EMAIL and FIRST_ADMIN_PASSWORD go together")
        if self.MAIL_BACKEND == "smtp" and not self.SMTP_HOST:
            raise ValueError("MAIL_BACKEND=smtp needs SMTP_HOST")
        if self.ENVIRONMENT == "production" and (refusals := self.production_refusals()):
            # Every one at once (a line each): fixing them one start at a time is slow.
            raise ValueError("\n".join(refusals))
        return self

    def production_refusals(self) -> list[str]:
        """What production refuses in these settings, every one (ENVIRONMENT decides only
        the mail and verification defaults): the validator raises them in production, and
        `tasks-api check-config` lists them for a copy of any settings with
        ENVIRONMENT=production."""
        refusals: list[str] = []
        secret = self.SECRET_KEY.get_secret_value()
        if secret == EXAMPLE_SECRET_KEY:
            refusals.append("SECRET_KEY is the example value; set a real secret in production")
        elif len(secret.encode()) < 32:
            refusals.append("SECRET_KEY must be at least 32 bytes in production")
        # Reset and confirmation links must reach the account's mailbox only, never a log.
        if linked := self._mailed_links():
            switch_off = " and ".join(f"{name}=false" for _, name in linked)
            what = " and ".join(purpose for purpose, _ in linked)
            if self.mail_backend != "smtp":
                refusals.append(
                    f"production with {what} needs mail: set MAIL_BACKEND=smtp and"
                    " SMTP_HOST (links are never written to the log), or"
                    f" {switch_off}"
                )
            if str(self.FRONTEND_URL).rstrip("/") == DEVELOPMENT_FRONTEND_URL:
                refusals.append(
                    f"production with {what} needs FRONTEND_URL (mailed links point"
                    f" there; {DEVELOPMENT_FRONTEND_URL} is the development default), or"
                    f" {switch_off}"
                )
        return refusals

    def _mailed_links(self) -> list[tuple[str, str]]:
        # (what mails a secret link, the setting that switches it off)
        linked: list[tuple[str, str]] = []
        if self.PASSWORD_RECOVERY_ENABLED:
            linked.append(("password recovery", "PASSWORD_RECOVERY_ENABLED"))
        if self.email_verification_enabled:
            linked.append(("email verification", "EMAIL_VERIFICATION_ENABLED"))
        return linked

    @property
    def email_verification_enabled(self) -> bool:
        """EMAIL_VERIFICATION_ENABLED, or by default on in production only."""
        if self.EMAIL_VERIFICATION_ENABLED is not None:
            return self.EMAIL_VERIFICATION_ENABLED
        return self.ENVIRONMENT == "production"

    @property
    def docs_enabled(self) -> bool:
        """DOCS_ENABLED, or by default on everywhere but production."""
        if self.DOCS_ENABLED is not None:
            return self.DOCS_ENABLED
        return self.ENVIRONMENT != "production"

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
