"""Password hashing and JSON Web Tokens as plain functions: no FastAPI, no database.

Passwords: argon2id through passlib, legacy bcrypt hashes still verify and are flagged for
an upgrade. Hashing is CPU-heavy, so the async wrappers run it in a worker thread, at most
`PASSWORD_HASH_CONCURRENCY` at a time, which keeps a sign-in storm from starving other work.

Tokens: every token carries an audience naming its purpose (access, refresh, reset, verify),
and is always decoded with an explicit algorithm allow-list and that one audience, so a token
can never stand in for another kind.
"""

import asyncio
import contextlib
import hashlib
import os
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

import anyio
from cachetools import LRUCache
from jose import jwt
from jose.exceptions import ExpiredSignatureError, JOSEError
from passlib.context import CryptContext

from app.core.config import Settings
from app.core.models import utcnow

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128


class TokenType(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"
    RESET = "reset"
    VERIFY = "verify"


class InvalidToken(Exception):
    """The token is malformed, forged, expired, or of the wrong kind."""


class TokenExpired(InvalidToken):
    """The token is ours and was valid, but its lifetime is over (the signature is checked
    first, so a forged token is never reported as expired)."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    token_type: TokenType
    jti: str
    session_id: str | None
    issued_at: datetime
    expires_at: datetime
    extra: dict[str, Any]


# How much lower than the process's the hashing threads' scheduling priority is (nice).
HASH_THREAD_NICENESS = 10


def _lower_thread_priority() -> None:
    # Linux schedules threads individually: this lowers only the calling (hashing) thread.
    # Elsewhere, or where it is refused, hashing simply runs at the normal priority.
    if sys.platform == "linux":
        thread = threading.get_native_id()
        with contextlib.suppress(OSError):
            niceness = os.getpriority(os.PRIO_PROCESS, thread) + HASH_THREAD_NICENESS
            os.setpriority(os.PRIO_PROCESS, thread, min(niceness, 19))


T = TypeVar("T")


class PasswordHasher:
    """Hashes and verifies passwords; one per process, built from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.context = CryptContext(
            schemes=["argon2", "bcrypt"],
            deprecated=["bcrypt"],
            argon2__type="ID",
            argon2__memory_cost=settings.ARGON2_MEMORY_KIB,
            argon2__time_cost=settings.ARGON2_TIME_COST,
            argon2__parallelism=settings.ARGON2_PARALLELISM,
        )
        # Hashes queue here (at most PASSWORD_HASH_CONCURRENCY at once) and run on threads of
        # their own at a lower scheduling priority: a hash takes a core for tens of
        # milliseconds, and the event loop serving every other request must come first.
        self.limiter = anyio.CapacityLimiter(settings.PASSWORD_HASH_CONCURRENCY)
        self._threads = ThreadPoolExecutor(
            max_workers=settings.PASSWORD_HASH_CONCURRENCY,
            thread_name_prefix="password-hash",
            initializer=_lower_thread_priority,
        )
        self._dummy_hash: str | None = None

    @property
    def dummy_hash(self) -> str:
        """Verified against when the account does not exist, so an unknown email costs
        exactly as much as a wrong password. Made on first use, in the worker thread that
        needs it: hashing never runs on the event loop, not even at start-up."""
        if self._dummy_hash is None:
            self._dummy_hash = str(self.context.hash("dummy-password-for-timing-equality"))
        return self._dummy_hash

    def hash_sync(self, password: str) -> str:
        return str(self.context.hash(password))

    def verify_and_update_sync(self, password: str, hashed: str | None) -> tuple[bool, str | None]:
        """(matches, new hash if the stored one uses outdated parameters or scheme)."""
        try:
            if hashed is None:
                self.context.verify(password, self.dummy_hash)
                return False, None
            ok, new_hash = self.context.verify_and_update(password, hashed)
        except (ValueError, TypeError):
            # An unknown or corrupt stored hash, or a password passlib refuses (over 4 KiB):
            # a mismatch, and the same answer whether or not the account exists.
            return False, None
        return bool(ok), new_hash

    async def run_in_hash_thread(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` on a hashing thread, waiting for a free one in turn."""
        async with self.limiter:
            return await asyncio.get_running_loop().run_in_executor(self._threads, function, *args)

    async def hash(self, password: str) -> str:
        return await self.run_in_hash_thread(self.hash_sync, password)

    async def verify_and_update(self, password: str, hashed: str | None) -> tuple[bool, str | None]:
        return await self.run_in_hash_thread(self.verify_and_update_sync, password, hashed)

    def close(self) -> None:
        """Let the hashing threads end (a hash already running finishes)."""
        self._threads.shutdown(wait=False)

    async def verify(self, password: str, hashed: str | None) -> bool:
        ok, _ = await self.verify_and_update(password, hashed)
        return ok


def credential_fingerprint(hashed_password: str, email: str) -> str:
    """A short digest of the stored hash and email: a reset token bound to it dies once either
    changes."""
    return hashlib.sha256(f"{email}\x00{hashed_password}".encode()).hexdigest()[:32]


def address_fingerprint(email: str, pending_email: str | None, verified_at: datetime | None) -> str:
    """A short digest of an account's address state: a confirmation token bound to it dies
    once the address is confirmed, changed, or another change is asked for."""
    # Microseconds since the epoch: the same instant whichever database (or tzinfo) it came from.
    verified = str(round(verified_at.timestamp() * 1_000_000)) if verified_at is not None else ""
    state = f"{email}\x00{pending_email or ''}\x00{verified}"
    return hashlib.sha256(state.encode()).hexdigest()[:32]


# One entry per recently seen token (~1 KB each): a few MB per process at most.
VERIFIED_TOKENS_REMEMBERED = 4096


class TokenCodec:
    """Issues and checks JWTs for one key set and algorithm."""

    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.JWT_ALGORITHM
        self.issuer = settings.JWT_ISSUER
        if self.algorithm == "RS256":
            if settings.JWT_PRIVATE_KEY is None or settings.JWT_PUBLIC_KEY is None:
                raise ValueError("RS256 needs JWT_PRIVATE_KEY and JWT_PUBLIC_KEY")
            self.signing_key: str = settings.JWT_PRIVATE_KEY.get_secret_value()
            self.verifying_key: str = settings.JWT_PUBLIC_KEY
        else:
            self.signing_key = self.verifying_key = settings.SECRET_KEY.get_secret_value()
        self._verified: LRUCache[tuple[str, TokenType], TokenClaims] = LRUCache(
            maxsize=VERIFIED_TOKENS_REMEMBERED
        )

    def audience(self, token_type: TokenType) -> str:
        return f"{self.issuer}:{token_type.value}"

    def encode(
        self,
        *,
        subject: str,
        token_type: TokenType,
        lifetime: timedelta,
        session_id: str | None = None,
        jti: str | None = None,
        extra: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> tuple[str, TokenClaims]:
        issued = now or utcnow()
        claims = TokenClaims(
            subject=subject,
            token_type=token_type,
            jti=jti or uuid.uuid4().hex,
            session_id=session_id,
            issued_at=issued,
            expires_at=issued + lifetime,
            extra=dict(extra or {}),
        )
        payload: dict[str, Any] = {
            **claims.extra,
            "iss": self.issuer,
            "aud": self.audience(token_type),
            "sub": subject,
            "typ": token_type.value,
            "jti": claims.jti,
            "iat": int(issued.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
        }
        if session_id is not None:
            payload["sid"] = session_id
        token = jwt.encode(payload, self.signing_key, algorithm=self.algorithm)
        return token, claims

    def decode(self, token: str, token_type: TokenType) -> TokenClaims:
        """Verify signature, algorithm, issuer, audience, expiry and type; raise InvalidToken.

        A token that verified once is remembered (bounded, per process): verification is a
        pure function of the token and this codec's keys, so only expiry is checked again.
        Revocation is not the codec's business; callers check it on every use.
        """
        key = (token, token_type)
        known = self._verified.get(key)
        if known is not None:
            if utcnow() < known.expires_at:
                return known
            del self._verified[key]
            raise TokenExpired("expired")
        claims = self._verify(token, token_type)
        self._verified[key] = claims
        return claims

    def _verify(self, token: str, token_type: TokenType) -> TokenClaims:
        try:
            payload = jwt.decode(
                token,
                self.verifying_key,
                algorithms=[self.algorithm],
                audience=self.audience(token_type),
                issuer=self.issuer,
                options={"require_exp": True, "require_iat": True, "require_sub": True},
            )
        except ExpiredSignatureError as exc:
            # python-jose checks the signature before the claims: this token is ours.
            raise TokenExpired(str(exc)) from exc
        except (JOSEError, ValueError, TypeError, KeyError) as exc:
            raise InvalidToken(str(exc)) from exc
        if payload.get("typ") != token_type.value or not isinstance(payload.get("jti"), str):
            raise InvalidToken("wrong token type")
        sid = payload.get("sid")
        if sid is not None and not isinstance(sid, str):
            raise InvalidToken("malformed session id")
        known = {"iss", "aud", "sub", "typ", "jti", "iat", "exp", "sid"}
        try:
            issued_at = datetime.fromtimestamp(int(payload["iat"]), UTC)
            expires_at = datetime.fromtimestamp(int(payload["exp"]), UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise InvalidToken("timestamp out of range") from exc
        return TokenClaims(
            subject=str(payload["sub"]),
            token_type=token_type,
            jti=payload["jti"],
            session_id=sid,
            issued_at=issued_at,
            expires_at=expires_at,
            extra={k: v for k, v in payload.items() if k not in known},
        )
