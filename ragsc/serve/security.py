"""What guards the service: the bearer token and the request-size limit.

* :class:`Guard` -- writes (KB ingestion and deletion) need ``Authorization: Bearer <token>``, compared in
  constant time (:func:`hmac.compare_digest`); with ``protect_reads`` every ``/v1`` read and ``/metrics`` too.
  The token is read from a file that must be readable by its owner only (mode ``0600`` or stricter): a token
  others can read is refused at start. Without a token file, writes are off (403).
* :func:`is_loopback` -- whether the server listens on loopback only (the default; anything else is warned
  about, and on loopback only loopback host names are answered).
* :class:`BodyLimit` -- an ASGI middleware that answers 413 before a body over ``max_bytes`` is read: from its
  ``Content-Length`` when given, else by counting the bytes as they stream in.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import stat
from pathlib import Path

from fastapi import HTTPException, Request

from ragsc.errors import ConfigError


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: str | os.PathLike) -> str:
    """The token in ``path`` (whitespace stripped); :class:`ConfigError` when the file is missing, empty,
    or readable by anyone but its owner."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise ConfigError(f"token file {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"token file {p} is not a regular file")
    if st.st_mode & 0o077:
        raise ConfigError(f"token file {p} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}): "
                          f"chmod 600 {p}")
    token = p.read_text().strip()
    if len(token) < 16:
        raise ConfigError(f"token file {p} holds {len(token)} characters; use at least 16 (e.g. "
                          "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return token


class Guard:
    """The token checks, as FastAPI dependencies (:meth:`read`, :meth:`write`)."""

    def __init__(self, token_file: Path | None, protect_reads: bool = False) -> None:
        self.token = read_token(token_file) if token_file is not None else None
        if protect_reads and self.token is None:
            raise ConfigError("protect_reads needs a token file (--token-file)")
        self.protect_reads = protect_reads

    def _check(self, request: Request) -> None:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise HTTPException(401, "this endpoint needs 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(value.strip().encode(), self.token.encode()):
            raise HTTPException(401, "wrong token", headers={"WWW-Authenticate": "Bearer"})

    async def read(self, request: Request) -> None:
        if self.protect_reads:
            self._check(request)

    async def write(self, request: Request) -> None:
        if self.token is None:
            raise HTTPException(403, "writes are off: this server was started without --token-file")
        self._check(request)


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes`` (see the module docstring)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                return await _reply(send, 400, "BadRequest", "Content-Length is not a number")
            if too_big:
                return await _reply(send, 413, "PayloadTooLarge",
                                    f"body of {int(length):,} bytes; this server takes at most "
                                    f"{self.max_bytes:,}")
        seen = 0
        sent_reply = False

        async def counted():
            nonlocal seen, sent_reply
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not sent_reply:
                    sent_reply = True
                    await _reply(send, 413, "PayloadTooLarge", f"body over {self.max_bytes:,} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message):  # after a 413 the app's own reply goes nowhere
            if not sent_reply:
                await send(message)

        return await self.app(scope, counted, guarded)


async def _reply(send, status: int, kind: str, detail: str) -> None:
    body = json.dumps({"error": kind, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
