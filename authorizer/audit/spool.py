"""The audit spool: a local append-only file that holds records while the database is down.

Records are appended as JSON lines and fsync'd before :meth:`Spool.append` returns, so
a record in the spool survives a crash. The writer replays the spool into the
database in file order before anything newer, and the file is removed once every
line is committed. A line cut short by a crash mid-append was never acknowledged;
it is set aside in ``<spool>.torn`` when the spool is opened.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from authorizer.audit.record import AuditRecord

log = logging.getLogger(__name__)


class SpoolFull(Exception):
    """The spool reached its size bound; new records cannot be taken (the proxy refuses requests)."""


@dataclass(frozen=True)
class SpoolBatch:
    """Records read from the spool and the file offset just after them (bytes)."""

    records: list[AuditRecord]
    end: int


class Spool:
    """Append-only JSON-lines file of audit records awaiting the database.

    Args:
        path: the spool file (created on first append; its directory must exist or be creatable).
        max_bytes: size bound; :meth:`append` raises :class:`SpoolFull` beyond it unless forced.
    """

    def __init__(self, path: Path, max_bytes: int = 256 << 20) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._read_offset = 0
        self._pending = 0
        if path.exists():
            self._recover()

    def _recover(self) -> None:
        data = self.path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):  # a crash cut the last append short: it was never acknowledged
            torn = self.path.with_name(self.path.name + ".torn")
            with torn.open("ab") as fh:
                fh.write(data[complete:] + b"\n")
            with self.path.open("r+b") as fh:
                fh.truncate(complete)
                os.fsync(fh.fileno())
            log.error("audit spool %s ended in a partial line (%d bytes, kept in %s)", self.path,
                      len(data) - complete, torn)
        self._pending = data[:complete].count(b"\n")

    @property
    def pending(self) -> int:
        """Records in the spool not yet replayed."""
        return self._pending

    @property
    def size(self) -> int:
        """The spool file's size in bytes (0 when there is none)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    @property
    def full(self) -> bool:
        """True when the size bound is reached (asked on every request: an empty spool, the
        usual case, has no file, so its size is not read from disk)."""
        if self._pending == 0:
            return self.max_bytes <= 0
        return self.size >= self.max_bytes

    def append(self, records: list[AuditRecord], force: bool = False) -> None:
        """Append ``records`` in order and fsync them (durable when this returns).

        Args:
            records: what to keep.
            force: ignore the size bound (shutdown: exceeding the bound beats losing records).

        Raises:
            SpoolFull: the records do not fit under ``max_bytes`` (nothing was written).
            OSError: the file could not be written (the caller keeps the records).
        """
        if not records:
            return
        data = b"".join(json.dumps(r.as_row(), ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
                        for r in records)
        if not force and self.size + len(data) > self.max_bytes:
            raise SpoolFull(f"audit spool {self.path} would exceed {self.max_bytes} bytes")
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:  # make the new file's directory entry durable too
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._pending += len(records)

    def read_batch(self, limit: int) -> SpoolBatch:
        """Up to ``limit`` of the oldest records not yet replayed (the file is not changed).

        Raises:
            ValueError: a line is not a valid record (the spool was edited by hand).
        """
        records: list[AuditRecord] = []
        if self._pending == 0:
            return SpoolBatch(records, self._read_offset)
        with self.path.open("rb") as fh:
            fh.seek(self._read_offset)
            while len(records) < limit:
                line = fh.readline()
                if not line.endswith(b"\n"):
                    break
                records.append(AuditRecord(**json.loads(line)))
            end = fh.tell() if records else self._read_offset
        return SpoolBatch(records, end)

    def consume(self, batch: SpoolBatch) -> None:
        """Mark ``batch`` as committed to the database; the file is removed once all of it is."""
        self._read_offset = batch.end
        self._pending -= len(batch.records)
        if self._pending <= 0:
            self.path.unlink(missing_ok=True)
            self._read_offset = 0
            self._pending = 0
