"""The options of `srfer serve`, declared once (the CLI is generated from this class). No torch."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from srfer.core.errors import SrferError
from srfer.core.options import DEVICE_HELP, GALLERY_HELP, RUNTIME_HELP, check_runtime, option

API_KEY_ENV = "SRFER_API_KEY"


@dataclass(kw_only=True)
class ServeOptions:
    """Where the server listens, what it serves from, and its limits."""

    host: str = option("127.0.0.1", "Address to listen on (0.0.0.0: every interface).")
    port: int = option(8000, "Port to listen on.", min=1, max=65535)
    gallery: str | None = option(None, GALLERY_HELP + " Shared by every replica when it is PostgreSQL.")
    workers: int = option(1, "Server processes, each with its own models.", min=1)
    threads: int = option(
        0,
        "Inferences run at once in a process, each with cores / threads intra-op threads (0: one per core).",
        min=0,
    )
    queue: int = option(8, "Requests that may wait for a thread; beyond, 503 with Retry-After.", min=0)
    max_upload_mb: float = option(10.0, "Largest upload, in MB (413 beyond).", min=0.01)
    api_key_file: Path | None = option(
        None,
        f"File holding the API key writes need (else ${API_KEY_ENV}; without either, writes are refused).",
    )
    protect_reads: bool = option(False, "Reads need the API key too (the web page asks for it).")
    cors_origin: list[str] = option(
        [], "Allow cross-origin requests from this origin (repeatable); off by default."
    )
    device: str = option("auto", DEVICE_HELP)
    runtime: str = option("torch", RUNTIME_HELP)

    def __post_init__(self) -> None:
        check_runtime(self.runtime)

    def inference_threads(self) -> int:
        return self.threads or max(1, os.cpu_count() or 1)

    def api_key(self) -> str | None:
        """The key writes (and, with `protect_reads`, reads) need: the file's, else the environment's."""
        if self.api_key_file is not None:
            try:
                key = Path(self.api_key_file).read_text().strip()
            except OSError as exc:
                raise SrferError(f"{self.api_key_file}: cannot read the API key ({exc.strerror})") from None
            if not key:
                raise SrferError(f"{self.api_key_file}: the API key file is empty")
            return key
        return os.environ.get(API_KEY_ENV) or None

    def to_json(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
