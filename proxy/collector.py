"""The proxy's cyclic garbage collector: what start-up built is set aside from its full collections.

Why: a gateway process holds a few hundred thousand long-lived objects made at start-up
(modules, the route map, the policy's Wasm runtime, SQLAlchemy's tables and compiled
statements). CPython's oldest-generation collection walks all of them every time it runs, which
under load was about every second: measured with ``gc.callbacks`` (docs/performance.md), 15 % of
the proxy's CPU went to the collector, and one full collection paused the event loop for up to
112 ms. ``gc.freeze()`` moves every object alive at that moment into a permanent generation that
collections skip (the use the Python documentation gives it); they are still freed by reference
counting. After it the collector took 6 % of the CPU and its longest pause was 18 ms. The
thresholds stay CPython's: a young generation of 10,000 objects took the collector to 3 % but
made each young collection pause the loop for about 8 ms.

The cost: a start-up object that later becomes part of unreachable cycles (say the first policy
bundle's objects once a newer bundle replaces it) stays in memory. That can happen to each such
object at most once, so it is bounded by what start-up built, and it does not grow with requests.
"""

from __future__ import annotations

import gc

from aiohttp import web

from proxy.gateway import GATEWAY


async def freeze_startup_objects(app: web.Application) -> None:
    """An ``on_startup`` hook, appended after the gateway's own: collect once (so no garbage is
    frozen), then freeze every object alive (``gc.freeze()``, Python 3.7+), and give the count to
    the gateway's metrics (``wmsgate_gc_frozen_objects``; counted once here: on Python 3.11
    ``gc.get_freeze_count()`` walks every frozen object).

    Args:
        app: the started application (the freeze itself is process-wide).
    """
    gc.collect()
    gc.freeze()
    gateway = app.get(GATEWAY)
    if gateway is not None and gateway.metrics is not None:
        gateway.metrics.frozen(gc.get_freeze_count())
