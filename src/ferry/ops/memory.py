"""glibc malloc settings that let a server's memory come back down after a burst.

glibc's mmap threshold is dynamic: after a large block (an argon2 password check's 19 MiB, a
big manifest) is freed, the threshold rises to that block's size, so every later block of that
size comes from the heap, where freed memory is kept by the process. The RSS of a region then
grew by tens of MiB after the first burst of logins and never went back. A fixed threshold keeps
large blocks in their own mappings, returned to the kernel on free; two arenas instead of eight
per core keep the threads (aiosqlite's, the executor's) from each holding freed memory apart.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("ferry")

M_MMAP_THRESHOLD = -3  # malloc.h
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1024 * 1024
ARENAS = 2


def tune_malloc() -> bool:
    """Applies the settings when this process runs on glibc; False elsewhere (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_ARENA_MAX, ARENAS))
    if not applied:
        log.debug("mallopt refused the memory settings")
    return applied
