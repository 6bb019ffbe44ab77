"""The proxy's start-up objects set aside from the garbage collector (proxy/collector.py): frozen
after the gateway's own start-up, garbage made before not frozen, cycles made later still collected."""

from __future__ import annotations

import asyncio
import gc
import re
import types
import weakref
from collections.abc import Iterator

import pytest
from aiohttp import web

from proxy.collector import freeze_startup_objects
from proxy.gateway import GATEWAY
from proxy.metrics import GatewayMetrics


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


@pytest.mark.usefixtures("unfrozen")
def test_the_frozen_count_reaches_the_metrics_once() -> None:
    metrics = GatewayMetrics(lambda: 0.0, lambda: 0.0, lambda: 0.0)
    app = web.Application()
    app[GATEWAY] = types.SimpleNamespace(metrics=metrics)  # type: ignore[assignment]  # only .metrics is read
    asyncio.run(freeze_startup_objects(app))
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    found = re.search(r"^wmsgate_gc_frozen_objects ([0-9.e+]+)$", metrics.exposition().decode(), re.M)
    assert found is not None and frozen > 1000
    assert abs(float(found.group(1)) - frozen) < frozen / 100  # counted at the freeze; a few have died since
