"""The proxy's start-up objects set aside from the garbage collector (proxy/collector.py): frozen
after the gateway's own start-up, garbage made before not frozen, cycles made later still collected."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
from aiohttp import web

from proxy.collector import freeze_startup_objects


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture()
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process must not keep its objects frozen


@pytest.mark.usefixtures("unfrozen")
def test_startup_objects_are_frozen_and_later_cycles_still_collected() -> None:
    kept = [_Node() for _ in range(100)]
    before_garbage = _cycle()  # garbage when the hook runs: collected, not frozen
    assert gc.get_freeze_count() == 0
    asyncio.run(freeze_startup_objects(web.Application()))
    assert before_garbage() is None
    assert gc.get_freeze_count() >= len(kept)
    later = _cycle()
    assert later() is not None
    gc.collect()
    assert later() is None
