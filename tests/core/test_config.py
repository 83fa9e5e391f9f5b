"""Settings: documented in .env.example, validated at start, safe in production."""

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import EXAMPLE_SECRET_KEY, Settings

ROOT = Path(__file__).resolve().parents[2]


def example_entries() -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            entries[name] = value
    return entries


def test_env_example_lists_exactly_the_settings() -> None:
    assert set(example_entries()) == set(Settings.model_fields)


def test_every_example_setting_has_a_comment() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[index - 1].startswith("# "), f"no comment above {line!r}"


def test_env_example_values_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text((ROOT / ".env.example").read_text())
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.DATABASE_URL == "sqlite:///./tasks.db"
    assert settings.FIRST_ADMIN_EMAIL is None  # empty means unset
    assert settings.RATE_LIMIT_ENABLED is True


def test_defaults_are_the_documented_ones() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.ENVIRONMENT == "development"
    assert settings.DATABASE_URL.startswith("sqlite:///")
    assert settings.ACCESS_TOKEN_EXPIRE_MINUTES == 15
    assert settings.REFRESH_TOKEN_EXPIRE_DAYS == 14
    assert settings.RATE_LIMIT_ENABLED is True


def test_postgres_url_switches_the_driver() -> None:
    settings = Settings(DATABASE_URL="postgresql://u:p@db:5432/tasks")
    assert settings.is_postgres
    assert settings.async_database_url == "postgresql+asyncpg://u:p@db:5432/tasks"
    sqlite = Settings(DATABASE_URL="sqlite:///./x.db")
    assert sqlite.async_database_url == "sqlite+aiosqlite:///./x.db"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/tasks"),
        ("ENVIRONMENT", "staging"),
        ("LOG_LEVEL", "LOUD"),
        ("DB_POOL_SIZE", "0"),
        ("CORS_ORIGINS", "not a url"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "soon"),
    ],
)
def test_a_wrong_setting_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as excinfo:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert name in str(excinfo.value)


def test_production_refuses_the_example_secret() -> None:
    with pytest.raises(ValidationError, match="example"):
        Settings(ENVIRONMENT="production", SECRET_KEY=EXAMPLE_SECRET_KEY)


def test_production_refuses_a_short_secret() -> None:
    with pytest.raises(ValidationError, match="32 bytes"):
        Settings(ENVIRONMENT="production", SECRET_KEY="x" * 31)


def test_production_accepts_a_real_secret() -> None:
    settings = Settings(
        ENVIRONMENT="production",
        SECRET_KEY="k" * 32,
        PASSWORD_RECOVERY_ENABLED=False,
        EMAIL_VERIFICATION_ENABLED=False,
    )
    assert settings.ENVIRONMENT == "production"


def test_cors_origins_take_a_comma_list_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "http://localhost:5173, https://app.example.com")
    origins = [str(o) for o in Settings(_env_file=None).CORS_ORIGINS]  # type: ignore[call-arg]
    assert origins == ["http://localhost:5173/", "https://app.example.com/"]
    monkeypatch.setenv("CORS_ORIGINS", '["https://a.example.com"]')
    assert len(Settings(_env_file=None).CORS_ORIGINS) == 1  # type: ignore[call-arg]


def test_rs256_needs_a_key_pair() -> None:
    with pytest.raises(ValidationError, match="RS256"):
        Settings(JWT_ALGORITHM="RS256")


def test_first_admin_settings_go_together() -> None:
    with pytest.raises(ValidationError, match="FIRST_ADMIN"):
        Settings(FIRST_ADMIN_EMAIL="admin@example.com")


def test_application_code_never_reads_os_environ() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "app").rglob("*.py")
        if re.search(r"os\.environ|os\.getenv", path.read_text())
        # config.py is where the environment is read; the CLI reads ADMIN_PASSWORD once.
        and path.name not in {"config.py", "cli.py"}
    ]
    assert offenders == []


def test_docs_are_off_in_production_unless_switched_on() -> None:
    production = {
        "ENVIRONMENT": "production",
        "SECRET_KEY": "a-real-production-secret-of-enough-length-0123456789",
        "PASSWORD_RECOVERY_ENABLED": False,
        "EMAIL_VERIFICATION_ENABLED": False,
    }
    assert Settings(**production).docs_enabled is False  # type: ignore[arg-type]
    assert Settings(**production, DOCS_ENABLED=True).docs_enabled is True  # type: ignore[arg-type]
    assert Settings(ENVIRONMENT="development").docs_enabled is True
    assert Settings(ENVIRONMENT="development", DOCS_ENABLED=False).docs_enabled is False


def test_development_throttles_are_loose_enough_to_click_through_the_docs() -> None:
    development = Settings(ENVIRONMENT="development", _env_file=None)  # type: ignore[call-arg]
    assert development.REGISTER_MAX_PER_IP >= 1000
    assert development.LOGIN_MAX_FAILURES_PER_ACCOUNT >= 50
    # Elsewhere the strict defaults; an explicit value always wins.
    assert Settings(ENVIRONMENT="test", _env_file=None).REGISTER_MAX_PER_IP == 10  # type: ignore[call-arg]
    explicit = Settings(ENVIRONMENT="development", REGISTER_MAX_PER_IP=3, _env_file=None)  # type: ignore[call-arg]
    assert explicit.REGISTER_MAX_PER_IP == 3


def test_development_throttles_come_from_the_environment_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("LOGIN_MAX_FAILURES_PER_IP", "7")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.LOGIN_MAX_FAILURES_PER_IP, settings.REGISTER_MAX_PER_IP) == (7, 1000)


def test_email_verification_is_on_in_production_only_unless_set() -> None:
    production = {
        "ENVIRONMENT": "production",
        "SECRET_KEY": "a-real-production-secret-of-enough-length-0123456789",
        "MAIL_BACKEND": "smtp",
        "SMTP_HOST": "smtp.example.com",
        "FRONTEND_URL": "https://app.example.com",
    }
    assert Settings(**production).email_verification_enabled is True  # type: ignore[arg-type]
    off = Settings(**production, EMAIL_VERIFICATION_ENABLED=False)  # type: ignore[arg-type]
    assert off.email_verification_enabled is False
    for environment in ("development", "test"):
        assert Settings(ENVIRONMENT=environment).email_verification_enabled is False
        on = Settings(ENVIRONMENT=environment, EMAIL_VERIFICATION_ENABLED=True)
        assert on.email_verification_enabled is True
