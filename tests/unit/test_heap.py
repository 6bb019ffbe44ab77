"""The proxy's C heap trim (proxy/heap.py): glibc's call loads and releases memory, the trim loop
keeps going after a failure, and its period is configured."""

from __future__ import annotations

import asyncio
import platform

import pytest

from authorizer.config import load_config
from authorizer.config_schema import ConfigError
from proxy.heap import CHeap, trim_forever
from wmsgate.tools import REPO

GATEWAY = REPO / "config" / "gateway.yaml"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                    reason="malloc_trim is glibc's: on musl or macOS the proxy does not trim (CI runs on glibc)")
def test_glibc_heap_trims() -> None:
    heap = CHeap.load()
    assert heap is not None
    blocks = [bytearray(4096) for _ in range(20_000)]  # 80 MB in small blocks, then freed: pages to give back
    del blocks
    assert heap.trim() is True


class _CountingHeap:
    def __init__(self) -> None:
        self.calls = 0

    def trim(self) -> bool:
        self.calls += 1
        if self.calls == 1:
            raise OSError("first trim fails")
        return True


def test_the_trim_loop_runs_on_after_a_failed_trim() -> None:
    heap = _CountingHeap()

    async def run() -> None:
        task = asyncio.create_task(trim_forever(heap, 0.01))  # type: ignore[arg-type]
        for _ in range(200):
            await asyncio.sleep(0.01)
            if heap.calls >= 3:
                break
        task.cancel()

    asyncio.run(run())
    assert heap.calls >= 3


@pytest.mark.usefixtures("config_secrets")
def test_memory_settings_default_and_are_checked() -> None:
    cfg = load_config(GATEWAY)
    assert cfg.heap_trim_seconds == 30.0
    assert load_config(GATEWAY, {"memory": {"trim_seconds": 0}}).heap_trim_seconds == 0  # 0: never
    for bad in (-1, 0.01):
        with pytest.raises(ConfigError, match="memory.trim_seconds"):
            load_config(GATEWAY, {"memory.trim_seconds": bad})
