"""The proxy's C heap: freed pages given back to the OS now and then.

Why: the proxy's threads (the audit chain's hashing, aiosqlite's connections, the default
executor) each get their own glibc malloc arena. Under load their freed memory stays resident,
fragmented, so the process's RSS crept up by about 14 % between 100,000 and 1,000,000 requests
(``make bench-soak``, docs/performance.md) while the main arena did not grow. ``malloc_trim(0)``
returns the free pages of every arena (``madvise(MADV_DONTNEED)`` since glibc 2.8, see
malloc_trim(3)). Fewer arenas (``mallopt(M_ARENA_MAX, 2)``) were measured too and not kept: the
threads then wait on each other's malloc locks, and a request cost about 20 % more CPU.

On a C library without ``malloc_trim`` (musl, macOS) :meth:`CHeap.load` answers None and
nothing changes.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)


class CHeap:
    """glibc's ``malloc_trim``, loaded from the running C library.

    Args:
        libc: the loaded C library (must have ``malloc_trim``).
    """

    def __init__(self, libc: ctypes.CDLL) -> None:
        self._trim = libc.malloc_trim
        self._trim.argtypes, self._trim.restype = [ctypes.c_size_t], ctypes.c_int

    @classmethod
    def load(cls) -> CHeap | None:
        """The process's C heap, or None when its C library has no ``malloc_trim`` (not glibc)."""
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name)
            libc.malloc_trim  # noqa: B018 - glibc only: raises AttributeError elsewhere
        except (OSError, AttributeError, TypeError):
            return None
        return cls(libc)

    def trim(self) -> bool:
        """Give the free pages of every arena back to the OS.

        Returns:
            True when some memory was released.
        """
        return bool(self._trim(0))


async def trim_forever(heap: CHeap, every_seconds: float) -> None:
    """Call :meth:`CHeap.trim` every ``every_seconds`` seconds, off the event loop (it walks every
    arena under its lock; a few milliseconds on a large heap). Runs until cancelled."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            await asyncio.to_thread(heap.trim)
        except Exception:
            log.exception("malloc_trim failed")
