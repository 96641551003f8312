"""The little ASGI plumbing the server needs: read a bounded body, send a response.

The server is a plain ASGI application (no framework) so the per-request overhead
is a dictionary lookup, one body read and one JSON encode.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from mlcycle_serving.errors import PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"


class ClientDisconnected(Exception):
    """The client went away before sending its whole body."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()


def header(scope: Scope, name: bytes) -> bytes | None:
    """First value of a request header (`name` in lower case)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, refusing (413) anything over `limit` bytes without reading it."""
    declared = header(scope, b"content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            length = 0
        if length > limit:
            raise PayloadTooLarge(f"request body of {length} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size, more_body = 0, True
    while more_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        more_body = message.get("more_body", False)
    return b"".join(chunks)  # a single chunk is returned as is, not copied


async def send_response(send: Send, response: Response) -> None:
    headers = [
        (b"content-type", response.content_type),
        (b"content-length", str(len(response.body)).encode()),
        *response.headers,
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
