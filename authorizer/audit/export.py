"""Exporting the audit trail for compliance: CSV (UTF-8 with BOM, for Excel on Chinese
Windows) or JSON lines, streamed, with the chain head so an auditor can verify it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from authorizer.audit.chain import GENESIS, Problem, chain_hash, signature_valid
from authorizer.audit.store import AuditQuery, AuditStore

CSV_COLUMNS = ("seq", "ts_ms", "time_utc", "decision_id", "username", "user_id", "roles", "module", "verb",
               "resource_id", "warehouse", "channel", "order_type", "decision", "reason_code", "reason_zh",
               "reason_en", "http_status", "upstream_status", "upstream_ms", "method", "path", "query", "client_ip",
               "user_agent", "device_id", "policy_revision", "approval_id", "prev_hash", "hash")


def _utc(ms: int) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


#: The key (JSONL) and column (CSV) of an export's watermark (:mod:`authorizer.enforce.exports`).
WATERMARK_KEY = "wmsgate_watermark"


async def export_jsonl(store: AuditStore, query: AuditQuery, watermark: str | None = None) -> AsyncIterator[str]:
    """Lines of a JSONL export: every matching record (all columns, chain order; with
    ``watermark`` under :data:`WATERMARK_KEY`, which the hash does not cover), then
    ``{"chain_head": {...}}`` with the newest signed checkpoint."""
    async for row in store.iter_chain(query):
        if watermark is not None:
            row[WATERMARK_KEY] = watermark
        yield json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"
    yield json.dumps({"chain_head": await store.latest_checkpoint()}, ensure_ascii=False) + "\n"


async def export_csv(store: AuditStore, query: AuditQuery, watermark: str | None = None) -> AsyncIterator[str]:
    """Chunks of a CSV export: BOM, header, rows in chain order (with ``watermark`` in a last
    :data:`WATERMARK_KEY` column), and a last ``# chain head`` line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    columns = CSV_COLUMNS if watermark is None else (*CSV_COLUMNS, WATERMARK_KEY)
    writer.writerow(columns)
    async for row in store.iter_chain(query):
        row["time_utc"] = _utc(row["ts_ms"])
        if watermark is not None:
            row[WATERMARK_KEY] = watermark
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    head = await store.latest_checkpoint()
    buffer.write(f"# chain head: {json.dumps(head, ensure_ascii=False)}\r\n")
    yield buffer.getvalue()


def verify_jsonl(lines: Iterable[str], public_key: Any, contiguous: bool = False) -> tuple[int, list[Problem]]:
    """Check a JSONL export: every record matches its hash; consecutive records link (gaps are
    expected in a filtered export and are not problems); the chain head's signature holds and,
    when the head record is in the export, its hash matches. Records written before the
    trail was chained (no hash at all, as ``audit verify`` lists them) are passed over while
    they lead the export; after the first chained record, a record without a hash is altered.

    Args:
        lines: the export's lines.
        public_key: the Ed25519 public key of the checkpoints.
        contiguous: the export is a whole segment (an archive): every record must link to
            the one before it and the signed head must be its last record.

    Returns:
        (records checked, problems).
    """
    problems: list[Problem] = []
    records: dict[int, dict[str, Any]] = {}
    head = None
    previous: dict[str, Any] | None = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            problems.append(Problem("unreadable", number, "", f"line {number} is not JSON"))
            continue
        if "chain_head" in doc:
            head = doc["chain_head"]
            continue
        doc.pop(WATERMARK_KEY, None)  # who exported it, not part of the record
        if doc.get("hash") is None and doc.get("prev_hash") is None and not contiguous and previous is None:
            continue  # written before the trail was chained (a leading run, as `audit verify` lists them)
        if chain_hash(doc, doc.get("prev_hash") or GENESIS) != doc.get("hash"):
            problems.append(Problem("altered", doc.get("seq", 0), doc.get("decision_id", ""),
                                    "this record does not match its hash"))
        if previous is not None and (contiguous or doc.get("seq") == previous.get("seq", 0) + 1) and \
                doc.get("prev_hash") != previous.get("hash"):
            problems.append(Problem("link_broken", doc["seq"], doc.get("decision_id", ""),
                                    "does not link to the record before it"))
        records[doc.get("seq", 0)] = doc
        previous = doc
    if head is None:
        problems.append(Problem("no_chain_head", 0, "", "the export has no signed chain head"))
    elif not signature_valid(public_key, head["seq"], head["hash"], head["at_ms"], head["signature"]):
        problems.append(Problem("bad_checkpoint", head["seq"], "", "the chain head's signature is not valid"))
    elif head["seq"] in records and records[head["seq"]]["hash"] != head["hash"]:
        problems.append(Problem("altered", head["seq"], "", "the signed head record was changed"))
    elif contiguous and (previous is None or previous.get("seq") != head["seq"]):
        problems.append(Problem("truncated", head["seq"], "", "the segment does not end at its signed head"))
    return len(records), problems
