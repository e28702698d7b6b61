"""Signed session cookies, sign-outs, flash messages and the CSRF tokens derived from a session.

Every comparison of a secret uses :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Literal

from aiohttp import web

from jobbridge.settings import Settings, TokenConfig
from jobbridge.web.shared_state import SharedState

COOKIE_NAME = "jobbridge_session"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"
#: longest credential or identity header value looked at
MAX_CREDENTIAL_CHARS = 4096
MAX_FLASH_CHARS = 600
#: signed-out sessions remembered at once (see Sessions.revoke)
MAX_REVOKED_SESSIONS = 100_000

FlashKind = Literal["ok", "error"]


@dataclass(frozen=True, slots=True)
class Session:
    """What the signed session cookie holds. Signed, not encrypted: nothing secret goes in."""

    #: random id; the CSRF token is derived from it
    sid: str
    #: expiry, Unix seconds
    exp: int
    #: fingerprint of the token a login exchanged (None: an anonymous, CSRF-only session)
    token_fp: str | None = None
    #: a one-shot message for the next page: (kind, text)
    flash: tuple[FlashKind, str] | None = None


@dataclass(slots=True)
class SessionState:
    """A request's session: the one its cookie carried, and whether to write a new one."""

    session: Session | None
    dirty: bool = False
    clear: bool = False
    _popped: bool = field(default=False, repr=False)

    def set(self, session: Session) -> None:
        self.session = session
        self.dirty = True
        self.clear = False

    def delete(self) -> None:
        self.session = None
        self.dirty = False
        self.clear = True


class Sessions:
    """Session signing, sign-outs and CSRF tokens for one app."""

    def __init__(self, settings: Settings) -> None:
        self.prefix = settings.server.prefix
        secret = (settings.auth.session_secret or "").encode() or secrets.token_bytes(32)
        self._session_key = _derive(secret, b"jobbridge session cookie v1")
        self._csrf_key = _derive(secret, b"jobbridge csrf token v1")
        self._fingerprint_key = _derive(secret, b"jobbridge token fingerprint v1")
        self.max_age_s = settings.auth.session_max_age_s
        #: session ids signed out before their cookie expires: sid -> expiry (Unix seconds)
        self._revoked: dict[str, int] = {}
        #: what this process shares with the other replicas (sign-outs, failed sign-ins)
        self.shared = SharedState.for_settings(
            settings, key_fingerprint=_b64(_derive(secret, b"jobbridge replica check v1"))[:16]
        )

    # ------------------------------------------------------------ sessions

    @property
    def cookie_path(self) -> str:
        return self.prefix or "/"

    def in_cookie_scope(self, path: str) -> bool:
        """Whether browsers send the session cookie with a request for ``path``."""
        return not self.prefix or path == self.prefix or path.startswith(self.prefix + "/")

    def new_session(self, token: TokenConfig | None = None) -> Session:
        return Session(
            sid=secrets.token_urlsafe(24),
            exp=int(time.time()) + self.max_age_s,
            token_fp=self.fingerprint(token) if token is not None else None,
        )

    def encode(self, session: Session) -> str:
        body = {"sid": session.sid, "exp": session.exp}
        if session.token_fp is not None:
            body["fp"] = session.token_fp
        if session.flash is not None:
            body["flash"] = list(session.flash)
        data = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{data}.{_b64(self._mac(data))}"

    def decode(self, value: str | None) -> Session | None:
        """The session a cookie value carries, or None if it is forged, malformed or expired."""
        if not value or len(value) > MAX_CREDENTIAL_CHARS or "." not in value:
            return None
        data, _, mac = value.rpartition(".")
        if not hmac.compare_digest(_b64(self._mac(data)).encode(), mac.encode()):
            return None
        try:
            body = json.loads(_unb64(data))
            sid, exp = body["sid"], body["exp"]
            fp = body.get("fp")
            flash = body.get("flash")
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if not isinstance(sid, str) or not isinstance(exp, int) or exp <= time.time():
            return None
        if fp is not None and not isinstance(fp, str):
            return None
        if sid in self._revoked:
            return None
        return Session(sid=sid, exp=exp, token_fp=fp, flash=_parse_flash(flash))

    async def session_from_cookie(self, value: str | None) -> Session | None:
        """The session a cookie carries, unless it was signed out here or on another replica."""
        session = self.decode(value)
        if session is not None and await self.shared.signed_out(session.sid):
            return None
        return session

    async def sign_out(self, session: Session) -> None:
        """End ``session`` on this process and on every replica sharing state."""
        self.revoke(session)
        await self.shared.sign_out(session.sid, session.exp)

    def revoke(self, session: Session) -> None:
        """End ``session`` on this process: a copy of its cookie no longer signs anyone in.

        Kept in memory until the cookie would have expired anyway (:meth:`sign_out` also
        tells the other replicas, through Redis).
        """
        now = int(time.time())
        self._revoked[session.sid] = session.exp
        if len(self._revoked) > MAX_REVOKED_SESSIONS:
            self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
            # Still too many: forget the oldest sign-outs first.
            while len(self._revoked) > MAX_REVOKED_SESSIONS:
                del self._revoked[next(iter(self._revoked))]

    def _mac(self, data: str) -> bytes:
        return hmac.new(self._session_key, data.encode(), hashlib.sha256).digest()

    def set_cookie(self, response: web.StreamResponse, session: Session, secure: bool) -> None:
        response.set_cookie(
            COOKIE_NAME,
            self.encode(session),
            max_age=max(0, session.exp - int(time.time())),
            path=self.cookie_path,
            httponly=True,
            samesite="Strict",
            secure=secure,
        )

    def clear_cookie(self, response: web.StreamResponse, secure: bool) -> None:
        response.set_cookie(
            COOKIE_NAME,
            "",
            max_age=0,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
            path=self.cookie_path,
            httponly=True,
            samesite="Strict",
            secure=secure,
        )

    def ensure_session(self, state: SessionState) -> Session:
        """The request's session, creating an anonymous one (for its CSRF token) if needed."""
        if state.session is None:
            state.set(self.new_session())
        assert state.session is not None
        return state.session

    def flash(self, state: SessionState, kind: FlashKind, text: str) -> None:
        session = self.ensure_session(state)
        state.set(replace(session, flash=(kind, text[:MAX_FLASH_CHARS])))

    @staticmethod
    def pop_flash(state: SessionState) -> tuple[FlashKind, str] | None:
        """The pending flash message, removed from the session (once per request)."""
        session = state.session
        if session is None or session.flash is None or state._popped:
            return None
        state._popped = True
        state.set(replace(session, flash=None))
        return session.flash

    def fingerprint(self, token: TokenConfig) -> str:
        """A keyed digest naming a configured token inside a session cookie."""
        message = f"{token.name}\x00{token.role}\x00{token.token_sha256}".encode()
        return _b64(hmac.new(self._fingerprint_key, message, hashlib.sha256).digest()[:18])

    # ------------------------------------------------------------ CSRF

    def csrf_token(self, session: Session) -> str:
        mac = hmac.new(self._csrf_key, session.sid.encode(), hashlib.sha256).digest()
        return _b64(mac)

    def csrf_valid(self, session: Session | None, token: str | None) -> bool:
        if session is None or not token or len(token) > MAX_CREDENTIAL_CHARS:
            return False
        return hmac.compare_digest(self.csrf_token(session).encode(), token.encode())


def _derive(secret: bytes, label: bytes) -> bytes:
    return hmac.new(secret, label, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _parse_flash(value: object) -> tuple[FlashKind, str] | None:
    if not isinstance(value, list) or len(value) != 2:
        return None
    kind, text = value
    if kind not in ("ok", "error") or not isinstance(text, str):
        return None
    return ("ok" if kind == "ok" else "error", text[:MAX_FLASH_CHARS])
