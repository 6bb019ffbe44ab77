"""The audit witness: an independent copy of the trail's signed checkpoints.

The hash chain and the checkpoints in the database catch edits, insertions and removals
in the middle, and removed records a remaining checkpoint vouches for. They cannot catch
someone who deletes the newest records *and* the checkpoints that vouch for them, or who
restores the whole database from an older copy (a rollback): what is left is a shorter
chain that is perfectly consistent. A witness closes that gap. Every checkpoint the
writer signs is also written to a sink the database's users cannot reach (a directory on
another disk, a network share, a WORM mount, a folder another host pulls), and
``wmsgate audit verify --witness`` requires every checkpoint the witness holds to be
matched by the trail (same sequence number, same record hash) or by a signed archive
marker covering it.

The witness holds only checkpoints (``seq``, record ``hash``, ``at_ms``, ``key_id``,
Ed25519 ``signature``): nothing personal, so it can live on a less protected host.
Witness entries are themselves signed by the audit key, so a forged entry is reported
(``bad_witness``), not trusted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from authorizer.audit.chain import Problem, signature_valid

log = logging.getLogger(__name__)

_FILE = re.compile(r"^checkpoint-(\d{20})\.json$")
_FIELDS = ("seq", "hash", "at_ms", "key_id", "signature")


class WitnessError(Exception):
    """The witness cannot be read or written (missing folder, unreadable entry, conflicting copy)."""


@dataclass(frozen=True)
class WitnessEntry:
    """One checkpoint as the witness holds it.

    Attributes:
        seq: the sequence number of the record the checkpoint vouches for.
        hash: that record's chain hash (hex SHA-256).
        at_ms: when the checkpoint was signed, milliseconds since the epoch (UTC).
        key_id: the id of the Ed25519 key that signed it (:func:`authorizer.audit.chain.key_id`).
        signature: base64 Ed25519 signature of ``seq:hash:at_ms``.
    """

    seq: int
    hash: str
    at_ms: int
    key_id: str
    signature: str

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> WitnessEntry:
        """An entry from a checkpoint row or a parsed witness file.

        Raises:
            WitnessError: a field is missing or has the wrong type.
        """
        try:
            seq, at_ms = row["seq"], row["at_ms"]
            if not isinstance(seq, int) or not isinstance(at_ms, int) or isinstance(seq, bool):
                raise TypeError("seq and at_ms must be integers")
            return cls(seq, str(row["hash"]), at_ms, str(row["key_id"]), str(row["signature"]))
        except (KeyError, TypeError) as exc:
            raise WitnessError(f"not a checkpoint: {exc}") from exc

    def as_json(self) -> bytes:
        """The entry as the compact, sorted JSON a witness file holds (UTF-8, newline-terminated)."""
        doc = {name: getattr(self, name) for name in _FIELDS}
        return (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


class Witness(Protocol):
    """Where checkpoints are copied to. Implementations must make :meth:`publish` durable
    before returning and never replace an entry already held."""

    def describe(self) -> str:
        """Where the witness is, for messages (a path or an address)."""
        ...

    def publish(self, entry: WitnessEntry) -> None:
        """Store ``entry`` durably; storing the same entry again is a no-op.

        Raises:
            WitnessError: a different entry is already held for ``entry.seq``.
            OSError: the sink cannot be written.
        """
        ...

    def entries(self) -> tuple[list[WitnessEntry], list[Problem]]:
        """Every entry held, oldest first, and the problems of entries that cannot be read.

        Raises:
            WitnessError: the witness itself cannot be read.
        """
        ...

    def newest_seq(self) -> int:
        """The newest sequence number held (0 before the first entry).

        Raises:
            OSError: the sink cannot be read.
        """
        ...


class DirectoryWitness:
    """A witness that keeps one file per checkpoint in a folder (``checkpoint-<seq>.json``).

    Each file is written to a temporary name, fsync'd, then hard-linked into place (which
    fails rather than replace an existing file), and the folder is fsync'd, so an entry
    is either fully there or absent after a crash. Put the folder where the audit
    database's users and administrators cannot write: another disk or host (NFS/SMB
    share), a WORM or append-only mount, or a folder an off-site job copies from.

    Args:
        path: the folder; created (with parents) on the first publish.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        """The folder's path."""
        return str(self.path)

    def _file(self, seq: int) -> Path:
        return self.path / f"checkpoint-{seq:020d}.json"

    def publish(self, entry: WitnessEntry) -> None:
        """Write ``entry`` durably unless the same entry is there already.

        Raises:
            WitnessError: a different entry is already held for this sequence number.
            OSError: the folder cannot be created or written.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        target = self._file(entry.seq)
        data = entry.as_json()
        if target.exists():
            self._same(target, data)
            return
        tmp = self.path / f".{target.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, target)
        except FileExistsError:
            self._same(target, data)  # another writer published it meanwhile
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @staticmethod
    def _same(target: Path, data: bytes) -> None:
        if target.read_bytes() != data:
            raise WitnessError(f"{target} already holds a different checkpoint for this sequence number")

    def newest_seq(self) -> int:
        """The newest sequence number among the entry files (0 when there are none or no folder yet).

        Raises:
            OSError: the folder exists but cannot be listed.
        """
        if not self.path.is_dir():
            return 0
        seqs = [int(m.group(1)) for m in map(_FILE.match, os.listdir(self.path)) if m is not None]
        return max(seqs, default=0)

    def entries(self) -> tuple[list[WitnessEntry], list[Problem]]:
        """Every readable entry, oldest first, and a ``bad_witness`` problem per unreadable file.

        Raises:
            WitnessError: the folder does not exist or cannot be listed.
        """
        if not self.path.is_dir():
            raise WitnessError(f"the witness folder {self.path} does not exist")
        entries: list[WitnessEntry] = []
        problems: list[Problem] = []
        for file in sorted(self.path.iterdir()):
            match = _FILE.match(file.name)
            if match is None:
                continue
            try:
                entry = WitnessEntry.of(json.loads(file.read_bytes()))
                if entry.seq != int(match.group(1)):
                    raise WitnessError(f"holds seq {entry.seq}")
            except (OSError, ValueError, WitnessError) as exc:
                problems.append(Problem("bad_witness", int(match.group(1)), "",
                                        f"witness entry {file.name} cannot be read: {exc}"))
                continue
            entries.append(entry)
        return entries, problems


class WitnessPublisher:
    """Copies every checkpoint the witness lacks to it, oldest first, off the event loop.

    A failed copy is retried at the next :meth:`sync` (the checkpoint stays in the
    database, so nothing is lost while the witness is unreachable); :attr:`lag` and
    :attr:`last_error` tell health checks and metrics how far behind it is.

    Args:
        store: the audit store (anything with ``async checkpoints_after(seq) -> list[dict]``).
        witness: where checkpoints go.
        retry_seconds: after a failure, :meth:`retry_due` is true again after this many seconds.
    """

    def __init__(self, store: Any, witness: Witness, retry_seconds: float = 5.0) -> None:
        self._store = store
        self.witness = witness
        self._retry_seconds = retry_seconds
        self._last_try = 0.0  # time.monotonic() of the last sync
        self._published: int | None = None  # newest seq known to be witnessed (None: ask the witness)
        self.lag = 0  # checkpoints in the database not yet witnessed after the last sync
        self.failures = 0
        self.last_error: str | None = None
        self._lock = asyncio.Lock()

    async def sync(self) -> int:
        """Publish the checkpoints newer than the newest the witness holds.

        Returns:
            How many were published. Never raises for a witness or database failure: it is
            logged, counted in :attr:`failures` and kept in :attr:`last_error`.
        """
        async with self._lock:
            self._last_try = time.monotonic()
            try:
                if self._published is None:
                    self._published = await asyncio.to_thread(self.witness.newest_seq)
                pending = [WitnessEntry.of(row) for row in await self._store.checkpoints_after(self._published)]
                self.lag = len(pending)
                for entry in pending:
                    await asyncio.to_thread(self.witness.publish, entry)
                    self._published = entry.seq
                    self.lag -= 1
            except Exception as exc:  # noqa: BLE001 - the witness is best effort; retried next time
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("audit witness %s not updated (%s); will retry", self.witness.describe(), exc)
                return 0
            published = len(pending)
            self.last_error = None
            return published

    def retry_due(self) -> bool:
        """True when the last sync failed and ``retry_seconds`` have passed since."""
        return self.last_error is not None and time.monotonic() - self._last_try >= self._retry_seconds


@dataclass(frozen=True)
class ChainExtent:
    """What part of the chain a verification walked.

    Attributes:
        head_seq: the newest record's sequence number (None: no records).
        archived_to: the last sequence number behind a signed archive marker (0: none).
        since_seq: verification started here (None: from the first record).
    """

    head_seq: int | None
    archived_to: int
    since_seq: int | None


def witness_problems(entries: Iterable[WitnessEntry], public_key: Any, hashes: Mapping[int, str],
                     chain: ChainExtent) -> list[Problem]:
    """Compare the witness's checkpoints with the trail.

    Args:
        entries: what the witness holds.
        public_key: the Ed25519 public key of the checkpoints.
        hashes: the chain hash of every record verified, by sequence number.
        chain: what part of the chain was verified (:class:`ChainExtent`).

    Returns:
        ``bad_witness`` for entries whose signature is not valid (ignored otherwise);
        ``rolled_back`` for entries beyond the newest record (tail records and their
        checkpoints deleted, or the database restored from an older copy); ``forked``
        when the record at an entry's seq has a different hash; ``link_broken`` when
        the record an entry vouches for is gone from the middle of the trail.
    """
    problems: list[Problem] = []
    newest_rollback: WitnessEntry | None = None
    for entry in entries:
        if not signature_valid(public_key, entry.seq, entry.hash, entry.at_ms, entry.signature):
            problems.append(Problem("bad_witness", entry.seq, "", "witness entry signature is not valid"))
            continue
        if entry.seq <= chain.archived_to or (chain.since_seq is not None and entry.seq < chain.since_seq):
            continue  # covered by a signed archive marker, or before the verified range
        if entry.seq in hashes:
            if hashes[entry.seq] != entry.hash:
                problems.append(Problem("forked", entry.seq, "",
                                        "the record the witness vouches for has a different hash: the trail "
                                        "was rewritten from here"))
        elif chain.head_seq is None or entry.seq > chain.head_seq:
            newest_rollback = entry
        else:
            problems.append(Problem("link_broken", entry.seq, "", "a record the witness vouches for was removed"))
    if newest_rollback is not None:
        problems.append(Problem(
            "rolled_back", newest_rollback.seq, "",
            f"the witness holds a checkpoint of seq {newest_rollback.seq} (signed at {newest_rollback.at_ms} ms) "
            f"but the trail ends at {chain.head_seq if chain.head_seq is not None else 'nothing'}: the newest "
            "records were deleted or the database was restored from an older copy"))
    return problems


def read_witness(witness: Witness) -> tuple[list[WitnessEntry], list[Problem]]:
    """The witness's entries and unreadable-entry problems; an unreachable witness is one
    ``bad_witness`` problem (so verification fails closed rather than pass without it)."""
    try:
        return witness.entries()
    except (OSError, WitnessError) as exc:
        return [], [Problem("bad_witness", 0, "", f"the witness {witness.describe()} cannot be read: {exc}")]

