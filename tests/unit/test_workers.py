"""``wmsgate proxy --workers``: spool files per worker and the supervisor's restart rules
(with stand-in worker commands; the real proxies are in tests/integration/test_scale_out.py)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from wmsgate import workers
from wmsgate.workers import Supervisor, worker_spool


def test_each_worker_has_its_own_spool_file() -> None:
    spool = Path("/var/lib/wmsgate/audit-spool.jsonl")
    assert worker_spool(spool, None) == spool
    assert worker_spool(spool, 0).name == "audit-spool.w0.jsonl"
    assert worker_spool(spool, 3) == Path("/var/lib/wmsgate/audit-spool.w3.jsonl")


def test_a_worker_failing_at_start_up_again_and_again_makes_the_supervisor_give_up(monkeypatch) -> None:
    monkeypatch.setattr(workers, "RESTART_DELAY_SECONDS", 0.01)
    supervisor = Supervisor([sys.executable, "-c", "import sys; sys.exit(2)"], workers=1)
    started = time.monotonic()
    assert supervisor.run() == 1
    assert time.monotonic() - started < 30


def test_a_worker_that_dies_after_running_a_while_is_started_again_and_stop_ends_all(monkeypatch) -> None:
    monkeypatch.setattr(workers, "QUICK_SECONDS", 0.1)
    monkeypatch.setattr(workers, "RESTART_DELAY_SECONDS", 0.01)
    supervisor = Supervisor([sys.executable, "-c", "import time; time.sleep(0.5)"], workers=2)
    timer = threading.Timer(3.0, supervisor.stop)
    timer.start()
    try:
        assert supervisor.run() == 0  # stopped by us, not given up
    finally:
        timer.cancel()
    assert all(proc.poll() is not None for proc in supervisor.processes.values())
    assert len(supervisor.started) == 2 and supervisor.quick_deaths == {0: 0, 1: 0}
