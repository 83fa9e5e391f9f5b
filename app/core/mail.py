"""Outgoing mail: SMTP when configured, the log in development, an in-memory outbox in tests."""

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import anyio

from app.core.config import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    body: str


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None: ...


class ConsoleMailer:
    """Writes each mail to the log: enough to follow a reset link in development."""

    async def send(self, mail: Mail) -> None:
        logger.info("mail to %s: %s\n%s", mail.to, mail.subject, mail.body)


class MemoryMailer:
    """Keeps every mail in `outbox`, for tests to read."""

    def __init__(self) -> None:
        self.outbox: list[Mail] = []

    async def send(self, mail: Mail) -> None:
        self.outbox.append(mail)


class SmtpMailer:
    """Sends through an SMTP server, in a worker thread (smtplib blocks)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _send_sync(self, mail: Mail) -> None:
        settings = self.settings
        message = EmailMessage()
        message["From"] = settings.MAIL_FROM
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        assert settings.SMTP_HOST is not None  # noqa: S101 - checked by Settings
        with smtplib.SMTP(settings.SMTP_HOST, settings.SMTP_PORT, timeout=10) as smtp:
            if settings.SMTP_STARTTLS:
                smtp.starttls()
            if settings.SMTP_USER and settings.SMTP_PASSWORD:
                smtp.login(settings.SMTP_USER, settings.SMTP_PASSWORD.get_secret_value())
            smtp.send_message(message)

    async def send(self, mail: Mail) -> None:
        try:
            await anyio.to_thread.run_sync(self._send_sync, mail)
        except (OSError, smtplib.SMTPException):
            # Sent after the response, so there is no client to tell; the log must say it.
            logger.exception("could not send mail to %s", mail.to)


def create_mailer(settings: Settings) -> Mailer:
    """The mail backend the settings ask for."""
    backend = settings.mail_backend
    if backend == "smtp":
        return SmtpMailer(settings)
    if backend == "memory":
        return MemoryMailer()
    return ConsoleMailer()
