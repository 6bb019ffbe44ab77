"""``wmsgate proxy --workers N``: N proxy processes on one host and one port.

The supervisor starts N worker processes (``wmsgate proxy --worker-index i``), each
listening on the same address with ``SO_REUSEPORT`` so the kernel spreads connections
across them. Everything they must agree on lives in the shared store (audit trail,
approvals, browser sessions, revocations, grants); each keeps only bounded caches (see
README "Several proxy processes"). A worker that dies is started again with the same
index (so it replays its own audit spool); SIGTERM or SIGINT stops them all.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: Fastest a crashing worker is restarted again, seconds.
RESTART_DELAY_SECONDS = 1.0
#: A worker that exits sooner than this after starting died "at start-up".
QUICK_SECONDS = 5.0
#: Start-up deaths in a row after which the supervisor gives up.
MAX_QUICK_DEATHS = 5


def worker_spool(path: Path, index: int | None) -> Path:
    """The audit spool file of worker ``index`` (each process needs its own): ``name.w<i>.ext``."""
    return path if index is None else path.with_name(f"{path.stem}.w{index}{path.suffix}")


@dataclass
class Supervisor:
    """Starts, watches and stops the worker processes.

    Args:
        command: the worker command line without ``--worker-index`` (``wmsgate proxy --config ...``).
        workers: how many processes.
        management_port: worker ``i``'s management listener is on this + ``i`` (0: any free port;
            None: the config's ``management.port`` + ``i``).
    """

    command: list[str]
    workers: int
    management_port: int | None = None
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: dict[int, float] = field(default_factory=dict)
    quick_deaths: dict[int, int] = field(default_factory=dict)
    stopping: bool = False

    def _start(self, index: int) -> None:
        env = {**os.environ, "WMSGATE_WORKER": str(index)}
        management = [] if self.management_port is None else [
            "--management-port", str(self.management_port + index if self.management_port else 0)]
        self.processes[index] = subprocess.Popen([*self.command, *management, "--worker-index", str(index)], env=env)
        self.started[index] = time.monotonic()
        log.warning("worker %d started (pid %d)", index, self.processes[index].pid)

    def stop(self, *_args: object) -> None:
        """Ask every worker to stop (SIGTERM); :meth:`run` returns once they have."""
        self.stopping = True
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def run(self) -> int:
        """Run until stopped; returns 0, or 1 when a worker kept dying right after starting
        (a configuration error: every start would fail the same way)."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        for index in range(self.workers):
            self._start(index)
        failed = False
        while not self.stopping:
            time.sleep(0.2)
            for index, proc in list(self.processes.items()):
                code = proc.poll()
                if code is None or self.stopping:
                    continue
                lived = time.monotonic() - self.started[index]
                self.quick_deaths[index] = self.quick_deaths.get(index, 0) + 1 if lived < QUICK_SECONDS else 0
                if self.quick_deaths[index] >= MAX_QUICK_DEATHS:
                    log.error("worker %d exited %d times right after starting (last: %s); giving up", index,
                              MAX_QUICK_DEATHS, code)
                    failed = True
                    self.stop()
                    break
                log.warning("worker %d (pid %d) exited with %s; starting it again", index, proc.pid, code)
                time.sleep(max(0.0, RESTART_DELAY_SECONDS - lived))
                self._start(index)
        deadline = time.monotonic() + 20
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return 1 if failed else 0


def supervise(config: str, workers: int, port: int | None, management_port: int | None = None) -> int:
    """Run ``workers`` proxy processes with ``config`` on one port until SIGTERM/SIGINT
    (worker ``i``'s management listener on ``management_port + i``, or the config's port + i)."""
    command = [sys.executable, "-m", "wmsgate.cli", "proxy", "--config", config]
    if port:
        command += ["--port", str(port)]
    return Supervisor(command, workers, management_port=management_port).run()
