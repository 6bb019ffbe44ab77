"""A throwaway PostgreSQL cluster on 127.0.0.1 from the Debian package's binaries.

Used by the tests and benchmarks for the "PostgreSQL at scale" backend: ``initdb`` a
fresh cluster in a private folder, ``pg_ctl`` it up on a loopback port, create
databases, stop it (``fast`` or ``immediate`` to simulate an outage), start it again.
When run as root the server runs as the ``postgres`` system user (PostgreSQL refuses
to run as root). Authentication is ``trust`` on 127.0.0.1 only: this is a test fixture,
not a production database.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


class PostgresError(RuntimeError):
    """The cluster could not be created, started or stopped (the server log tail is included)."""


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb`` and ``pg_ctl``.

    Raises:
        PostgresError: the Debian ``postgresql`` package is not installed.
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise PostgresError("PostgreSQL is not installed: apt-get install postgresql (make test does it in CI)")
    return Path(found[-1]).parent


class LocalPostgres:
    """One PostgreSQL cluster under a private temporary folder.

    Args:
        port: TCP port on ``host``.
        host: loopback address to listen on.
        user: the superuser role created by ``initdb``.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", user: str = "wmsgate") -> None:
        self.port = port
        self.host = host
        self.user = user
        self.bin = find_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="wmsgate-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def init(self) -> None:
        """Create the cluster (``initdb``, UTF-8, trust on loopback, fsync on).

        Raises:
            PostgresError: initdb failed.
        """
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o700)
        out = self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust",
                        "--encoding=UTF8", "--locale=C.UTF-8")
        if out.returncode != 0:
            raise PostgresError(f"initdb failed: {out.stdout}{out.stderr}")
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as fh:
            fh.write(f"\nlisten_addresses = '{self.host}'\nport = {self.port}\n"
                     f"unix_socket_directories = '{self.root}'\nmax_connections = 200\n")

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it accepts connections.

        Raises:
            PostgresError: it did not come up in ``timeout`` seconds.
        """
        out = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                        "-t", str(int(timeout)), "start", timeout=timeout + 10)
        if out.returncode != 0:
            raise PostgresError(f"pg_ctl start failed: {out.stdout}{out.stderr}\n{self.log_tail()}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back sessions; ``immediate``: like a crash)."""
        if not (self.data / "postmaster.pid").exists():
            return
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until the server accepts connections.

        Raises:
            PostgresError: not ready in time.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._run(str(self.bin / "pg_isready"), "-h", self.host, "-p", str(self.port)).returncode == 0:
                return
            time.sleep(0.2)
        raise PostgresError(f"PostgreSQL not ready on {self.host}:{self.port}\n{self.log_tail()}")

    def create_database(self, name: str) -> str:
        """Create database ``name`` (if missing) and return its SQLAlchemy async URL.

        Raises:
            PostgresError: createdb failed for another reason than "already exists".
        """
        out = self._run(str(self.bin / "createdb"), "-h", self.host, "-p", str(self.port), "-U", self.user, name)
        if out.returncode != 0 and "already exists" not in out.stderr:
            raise PostgresError(f"createdb {name} failed: {out.stderr}")
        return self.url(name)

    def url(self, database: str) -> str:
        """``postgresql+asyncpg://user@host:port/database``."""
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"

    def destroy(self) -> None:
        """Stop the server and delete the cluster's folder."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log."""
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"
