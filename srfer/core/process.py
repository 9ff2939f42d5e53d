"""Process-wide settings: made by whoever owns the process (the CLI, srfer's worker
processes), never by the library on a caller's behalf. Imports nothing heavy (the CLI is built
without torch)."""

from __future__ import annotations

import ctypes

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Let the process keep memory it frees instead of handing it back to the OS at once.

    With glibc's defaults, freed blocks above its (adaptive, at most 32 MiB) thresholds go back
    to the OS, so every large activation a network allocates is page-faulted in afresh (MTCNN's
    P-Net on a large photo pays a third of its time for it: docs/performance.md). Process-wide,
    so it is the CLI's and its worker processes' choice, not the library's. False where the C
    library is not glibc."""
    try:  # the symbols already loaded into this process: the C library's among them
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    settings = ((_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 256 << 20), (_M_MMAP_THRESHOLD, 32 << 20))
    return all(mallopt(option, value) == 1 for option, value in settings)
