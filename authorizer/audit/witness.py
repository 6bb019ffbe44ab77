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
import contextlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from authorizer.audit.chain import Problem, signature_valid

log = logging.getLogger(__name__)

_FILE = re.compile(r"^checkpoint-(\d{20})\.json$")
_FIELDS = ("seq", "hash", "at_ms", "key_id", "signature")
#: How long a signed checkpoint may take to reach the witness before verification counts it missing (ms).
WITNESS_GRACE_MS = 5 * 60_000


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
            WitnessError: the witness is not there, or a different entry is already held for ``entry.seq``.
            OSError: the sink cannot be written.
        """
        ...

    def held_seqs(self) -> list[int]:
        """The sequence numbers of the entries held (as their names say), newest first.

        Raises:
            WitnessError: the witness is not there. OSError: it cannot be listed.
        """
        ...

    def read(self, seq: int) -> WitnessEntry | None:
        """The entry held for ``seq``, or None when there is none or it cannot be read."""
        ...

    def entries(self) -> tuple[list[WitnessEntry], list[Problem]]:
        """Every entry held, oldest first, and the problems of entries that cannot be read.

        Raises:
            WitnessError: the witness itself cannot be read.
        """
        ...


class DirectoryWitness:
    """A witness that keeps one file per checkpoint in a folder (``checkpoint-<seq>.json``).

    Each file is created exclusively (``O_CREAT | O_EXCL``: an existing file is never
    replaced), written, fsync'd, and the folder fsync'd; a file cut short by a crash reads as
    ``bad_witness``. This works on append-only and WORM mounts too. Put the folder where the
    audit database's users and administrators cannot write: another disk or host (NFS/SMB
    share), a WORM or append-only mount, or a folder an off-site job copies from. The folder
    must exist: it is never created, so an unmounted share is an error, not a local folder
    that would look like the witness.

    Args:
        path: the folder.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        """The folder's path."""
        return str(self.path)

    def _file(self, seq: int) -> Path:
        return self.path / f"checkpoint-{seq:020d}.json"

    def _require(self) -> None:
        if not self.path.is_dir():
            raise WitnessError(f"the witness folder {self.path} does not exist (is the share mounted?)")

    def publish(self, entry: WitnessEntry) -> None:
        """Write ``entry`` durably unless the same entry is there already.

        Raises:
            WitnessError: the folder is missing, or a different entry is already held for this
                sequence number.
            OSError: the folder cannot be written.
        """
        self._require()
        target = self._file(entry.seq)
        data = entry.as_json()
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            if target.read_bytes() != data:
                raise WitnessError(f"{target} already holds a different checkpoint for this sequence number") from None
            return
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def held_seqs(self) -> list[int]:
        """The sequence numbers the entry files are named for, newest first.

        Raises:
            WitnessError: the folder is missing. OSError: it cannot be listed.
        """
        self._require()
        return sorted((int(m.group(1)) for m in map(_FILE.match, os.listdir(self.path)) if m is not None),
                      reverse=True)

    def read(self, seq: int) -> WitnessEntry | None:
        """The entry of ``seq``, or None when absent or unreadable."""
        try:
            entry = WitnessEntry.of(json.loads(self._file(seq).read_bytes()))
        except (OSError, ValueError, WitnessError):
            return None
        return entry if entry.seq == seq else None

    def entries(self) -> tuple[list[WitnessEntry], list[Problem]]:
        """Every readable entry, oldest first, and a ``bad_witness`` problem per unreadable file.

        Raises:
            WitnessError: the folder does not exist or cannot be listed.
        """
        self._require()
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
    """Copies every checkpoint the witness lacks to it, oldest first, in a background task of its
    own (:meth:`run_forever`, woken by :meth:`notify`), so a slow or hung share never holds up
    the audit writer or a request.

    Where the witness stands is learnt from its contents, not its file names: the newest
    entry that equals the database's checkpoint of that seq (a junk or forged file is passed
    over), and it is checked again before each round (an emptied or remounted folder is
    noticed and filled again). A failed copy is retried every ``retry_seconds``; the
    checkpoints stay in the database meanwhile, and :attr:`lag` / :attr:`last_error` tell the
    health check and the metrics.

    Args:
        store: the audit store (``checkpoints_after(seq)``, ``checkpoint_at(seq)``).
        witness: where checkpoints go.
        retry_seconds: how often a failing witness is tried again.
    """

    def __init__(self, store: Any, witness: Witness, retry_seconds: float = 5.0) -> None:
        self._store = store
        self.witness = witness
        self._retry_seconds = retry_seconds
        self._published: WitnessEntry | None = None  # newest entry known to be witnessed (None: find out)
        self.lag = 0  # checkpoints in the database not yet witnessed after the last round
        self.failures = 0
        self.last_error: str | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """A new checkpoint was signed: copy it soon (never blocks)."""
        self._wake.set()

    async def run_forever(self) -> None:
        """Copy checkpoints whenever notified, and every ``retry_seconds`` while failing, until cancelled."""
        while True:
            timeout = self._retry_seconds if self.last_error is not None or self.lag else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            self._wake.clear()
            await self.sync()

    async def drain(self, limit_seconds: float) -> None:
        """One last round at shutdown, bounded by ``limit_seconds`` (a hung share does not hold it up)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.sync(), timeout=limit_seconds)

    async def _where(self) -> int:
        """The newest seq the witness really holds (its entry equals the database's checkpoint)."""
        if self._published is not None and await asyncio.to_thread(self.witness.read,
                                                                   self._published.seq) == self._published:
            return self._published.seq
        for seq in await asyncio.to_thread(self.witness.held_seqs):
            entry = await asyncio.to_thread(self.witness.read, seq)
            row = await self._store.checkpoint_at(seq)
            if entry is not None and row is not None and entry == WitnessEntry.of(row):
                self._published = entry
                return seq
            log.warning("audit witness %s: checkpoint-%d does not match the trail; passed over",
                        self.witness.describe(), seq)
        self._published = None
        return 0

    async def sync(self) -> int:
        """Publish the checkpoints newer than the newest the witness holds.

        Returns:
            How many were published. Never raises for a witness or database failure: it is
            logged, counted in :attr:`failures` and kept in :attr:`last_error`.
        """
        async with self._lock:
            published = 0
            try:
                try:
                    where = await self._where()
                except (OSError, WitnessError):  # the witness is away: the lag is what the database holds beyond it
                    known = self._published.seq if self._published is not None else 0
                    self.lag = len(await self._store.checkpoints_after(known))
                    raise
                pending = [WitnessEntry.of(row) for row in await self._store.checkpoints_after(where)]
                self.lag = len(pending)
                for entry in pending:
                    await asyncio.to_thread(self.witness.publish, entry)
                    self._published = entry
                    self.lag -= 1
                    published += 1
            except Exception as exc:  # noqa: BLE001 - the witness is best effort; retried next round
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("audit witness %s not updated (%s); will retry", self.witness.describe(), exc)
                return published
            self.last_error = None
            return published


@dataclass(frozen=True)
class ChainExtent:
    """What part of the chain a verification walked.

    Attributes:
        head_seq: the newest record's sequence number (None: no records).
        archived_to: the last sequence number behind a signed archive marker (0: none).
        since_seq: verification started here (None: from the first record).
        signed: the database's checkpoints, ``(seq, at_ms)``.
        now_ms: when verification runs (UTC epoch ms): checkpoints older than
            :data:`WITNESS_GRACE_MS` must be in the witness.
    """

    head_seq: int | None
    archived_to: int
    since_seq: int | None
    signed: tuple[tuple[int, int], ...] = ()
    now_ms: int = 0


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
        ``unwitnessed`` when checkpoints older than :data:`WITNESS_GRACE_MS` are missing from
        the witness (an empty, stale or foreign witness proves nothing, so it fails);
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
    witnessed = {e.seq for e in entries if signature_valid(public_key, e.seq, e.hash, e.at_ms, e.signature)}
    late = [(seq, at_ms) for seq, at_ms in chain.signed if seq not in witnessed and seq > chain.archived_to
            and at_ms <= chain.now_ms - WITNESS_GRACE_MS and (chain.since_seq is None or seq >= chain.since_seq)]
    if late:
        seq, at_ms = late[-1]
        problems.append(Problem(
            "unwitnessed", seq, "",
            f"{len(late)} checkpoint(s) signed over {WITNESS_GRACE_MS // 60_000} minutes ago are not in the witness "
            f"(the newest: seq {seq}, signed at {at_ms} ms): it is behind, was emptied, or is not the trail's witness"))
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

