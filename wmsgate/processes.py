"""Running services as processes on this machine: start, wait until ready, stop (whole process groups).

Shared by the demo stack (:mod:`wmsgate.devstack`) and a deployment folder's stack
(:mod:`wmsgate.deployment_stack`). Every process runs in its own process group so
stopping a service stops its children too (Keycloak's JVM included).
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A service did not start; the message includes the end of its log."""


@dataclass
class Service:
    """One process to run: its command, where it answers when ready, its log and environment.

    Attributes:
        ready_url: polled until it answers 200 (any answer with ``ready_on_any_answer``).
        timeout: seconds to wait for readiness.
        ca_file: for an https ``ready_url``, the CA the check trusts.
    """

    name: str
    argv: list[str]
    ready_url: str
    log: Path
    env: dict[str, str]
    cwd: Path
    timeout: float
    process: subprocess.Popen[bytes] | None = None
    ready_on_any_answer: bool = False
    ca_file: Path | None = None  # an https ready_url is checked trusting this CA


def http_status(url: str, timeout: float = 2.0, ca_file: Path | None = None) -> int:
    """The HTTP status of a GET of ``url`` (0 when nothing answers within ``timeout`` seconds)."""
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0




class ProcessGroup:
    """The services started so far, newest last."""

    def __init__(self) -> None:
        self.services: list[Service] = []

    def stop(self) -> None:
        """Stop every started process (SIGTERM to its group, SIGKILL after 15 s), newest first."""
        for service in reversed(self.services):
            proc = service.process
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 15
        for service in reversed(self.services):
            proc = service.process
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        self.services.clear()

    def failed(self) -> list[str]:
        """Names of services whose process has exited."""
        return [s.name for s in self.services if s.process is not None and s.process.poll() is not None]

    def stop_service(self, name: str, timeout: float = 30.0) -> None:
        """Stop one named service: SIGTERM to its process group; one that has not stopped
        after ``timeout`` seconds gets SIGUSR1 first (a Python service dumps its threads'
        stacks into its log, to show where shutdown hung), then SIGKILL."""
        for service in [s for s in self.services if s.name == name]:
            if service.process is not None and service.process.poll() is None:
                os.killpg(service.process.pid, signal.SIGTERM)
                try:
                    service.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    with service.log.open("ab") as log:
                        log.write(f"\n[stack] {name} did not stop {timeout:.0f} s after SIGTERM; "
                                  "stacks follow, then SIGKILL\n".encode())
                    os.kill(service.process.pid, signal.SIGUSR1)
                    time.sleep(1)
                    os.killpg(service.process.pid, signal.SIGKILL)
                    service.process.wait()
            self.services.remove(service)

    def _spawn(self, service: Service) -> None:
        log = service.log.open("ab")
        env = {**os.environ, **service.env}
        service.process = subprocess.Popen(service.argv, cwd=service.cwd, env=env, stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.services.append(service)

    def _wait_ready(self, service: Service) -> None:
        deadline = time.monotonic() + service.timeout
        while time.monotonic() < deadline:
            assert service.process is not None
            if service.process.poll() is not None:
                raise StackError(f"{service.name} exited with {service.process.returncode}\n{self._tail(service)}")
            status = http_status(service.ready_url, ca_file=service.ca_file)
            if status == 200 or (service.ready_on_any_answer and status != 0):
                return
            time.sleep(0.3)
        raise StackError(f"{service.name} not ready after {service.timeout:.0f}s at {service.ready_url}\n"
                         f"{self._tail(service)}")

    @staticmethod
    def _tail(service: Service, lines: int = 40) -> str:
        try:
            text = service.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return f"--- last lines of {service.log} ---\n" + "\n".join(text[-lines:])
