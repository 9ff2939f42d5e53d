"""The exceptions the CLI turns into one line and a non-zero exit (never a traceback), and
`writing`, which turns a failed write into one of them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


class SrferError(Exception):
    """A user-facing failure: bad input, missing weights, wrong checkpoint.

    The message is a complete sentence meant to be printed as-is, without a traceback.
    """


class TooLarge(SrferError):
    """An input over a size limit (pixels, bytes): a server answers 413."""


class ServiceUnavailable(SrferError):
    """A service srfer depends on (the gallery's database) cannot be reached: not the input's
    fault, so a batch stops instead of skipping the input, and a server answers 503."""


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C (or SIGTERM) once the interrupted run's state is safely on disk."""

    def __init__(self, checkpoint) -> None:
        super().__init__(f"interrupted; state saved to {checkpoint} (continue with --resume)")
        self.checkpoint = checkpoint


@contextlib.contextmanager
def writing(path: str | Path, partial: str | Path | None = None) -> Iterator[None]:
    """OS errors while writing `path` (a read-only file system, a full disk, a file where a
    folder should be) become one `SrferError` naming the path and the cause. `partial` (a
    temporary file) is removed on any failure, so nothing half-written is left behind."""
    try:
        yield
    except BaseException as exc:
        if partial is not None:
            with contextlib.suppress(OSError):
                Path(partial).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SrferError(f"{path}: cannot write ({_cause(Path(path), exc)})") from None
        raise


def _cause(path: Path, exc: OSError) -> str:
    """The OS's reason, or plainer words when a file stands where a folder should be."""
    existing = next((p for p in path.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"{existing} is a file, not a folder"
    return exc.strerror or str(exc)
