"""Who may write, what a name may be, and how big an upload may be."""

from __future__ import annotations

import hmac
import re

from fastapi import HTTPException, Request, UploadFile

from srfer.core.errors import SrferError, TooLarge

NAME = re.compile(r"^[\w][\w .'-]{0,63}$")  # letters (any script), digits, space, . ' - _
CHUNK = 1 << 16


class Keys:
    """The API key (None: writes refused) and whether reads need it too."""

    def __init__(self, key: str | None, protect_reads: bool) -> None:
        self._key = key.encode() if key else None
        self.protect_reads = protect_reads

    def check(self, request: Request, write: bool) -> None:
        if not write and not self.protect_reads:
            return
        if self._key is None:
            raise HTTPException(
                403, "writes are disabled: start the server with SRFER_API_KEY or --api-key-file"
            )
        given = request.headers.get("x-api-key") or _bearer(request.headers.get("authorization", ""))
        if not given or not hmac.compare_digest(given.encode(), self._key):  # constant time
            raise HTTPException(401, "a valid API key is needed (header X-API-Key)")


def _bearer(value: str) -> str:
    return value[7:].strip() if value.lower().startswith("bearer ") else ""


def valid_name(name: str) -> str:
    """A person's name as the gallery keeps it: up to 64 letters, digits, spaces and . ' - _."""
    if not NAME.match(name) or name.strip() != name or ".." in name:
        raise SrferError(f"{name!r}: a name is 1–64 letters, digits, spaces and . ' - _ (no '..')")
    return name


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The upload's bytes, refused beyond `limit` (read no further than that)."""
    data = bytearray()
    while chunk := await upload.read(CHUNK):
        data += chunk
        if len(data) > limit:
            raise TooLarge(f"{upload.filename or 'the upload'}: over the {limit / 1e6:g} MB upload limit")
    if not data:
        raise SrferError(f"{upload.filename or 'the upload'}: an empty file")
    return bytes(data)
