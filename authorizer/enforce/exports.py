"""Export control at the PEP: count an export's rows, refuse it above the policy's limit, hold
it for four-eyes approval above a smaller one, ask for a reason above a smaller one still (or
whenever it carries unmasked personal data), and watermark every row so a leaked file names
its exporter.

A held export is not kept: the WMS's answer is dropped. Once approved, its requester sends
the same request again with ``X-Export-Approval: <approval id>`` (or the query parameter
:data:`EXPORT_APPROVAL_PARAM`) and receives it, once (the
rows of that moment, watermarked with that download's decision id).

The watermark is a last column, ``wmsgate_watermark``, whose every cell is
``wmsgate:<decision id>``: the id of the export's audit record (exporter, time, address,
reason, rows). Cutting a few rows out of the file keeps it; ``wmsgate audit find-export
FILE`` reads it back. (Removing the column on purpose removes it, as with any visible
mark; the audit record of the export stays either way.)
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

from authorizer.authz.pdp import ApprovalRule, ExportControl
from authorizer.messages import TEXTS

WATERMARK_COLUMN = "wmsgate_watermark"
#: How a watermark looks in a file (any text format): ``wmsgate:`` and a 32-hex decision id.
WATERMARK = re.compile(r"wmsgate:([0-9a-f]{32})")
MAX_REASON = 500
#: The query parameter that names an approved export to download (as the header
#: ``X-Export-Approval`` does), so a browser can follow a link to it; the gateway consumes
#: it and never forwards it.
EXPORT_APPROVAL_PARAM = "wmsgate_export_approval"


class ExportHeld(Exception):
    """The export needs a second person's approval before it is handed out.

    Attributes:
        rows: its row count; pii: the unmasked personal data it carries; rule: the approval.
    """

    def __init__(self, rows: int, pii: tuple[str, ...], rule: ApprovalRule) -> None:
        super().__init__("export_approval_required")
        self.rows, self.pii, self.rule = rows, pii, rule


class ExportRefused(Exception):
    """The export may not be handed out: ``key`` is the catalog entry
    (``export_reason_required`` or ``export_too_large``), ``params`` its values."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key, self.params = key, params


@dataclass(frozen=True)
class ExportContext:
    """Who exports, and why.

    Attributes:
        decision_id: the export's audit record (the watermark names it).
        reason: the exporter's reason (``X-Export-Reason``, or the approved request's), or None.
        approval_id: the approval this download uses (``X-Export-Approval``), or None.
        approved_rows: how many rows the approvers saw (the download may not carry more).
    """

    decision_id: str
    reason: str | None
    approval_id: str | None = None
    approved_rows: int | None = None


def watermark(decision_id: str) -> str:
    """The watermark of one export."""
    return f"wmsgate:{decision_id}"


def check_rows(rows: int, control: ExportControl, ctx: ExportContext, pii: tuple[str, ...] | None = None) -> None:
    """Refuse an export of ``rows`` rows that is too large, or that needs a reason without one.

    Args:
        pii: the unmasked personal data the answer really carries (None: assume all of
            ``control.unmasked_pii``, when the answer's fields cannot be told).

    Raises:
        ExportRefused: ``export_too_large`` above ``refuse_over_rows`` (or above
            ``approve_over_rows`` when the policy gives no approval rule: fail closed);
            ``export_reason_required`` above ``reason_over_rows`` or with unmasked personal
            data, when no reason was given.
            ``export_approval_unusable`` when an approved download carries more rows than
            were approved.
        ExportHeld: above ``approve_over_rows`` without an approval (``ctx.approval_id``).
    """
    carried = control.unmasked_pii if pii is None else pii
    if rows > control.refuse_over_rows:
        raise ExportRefused("export_too_large", rows=rows, limit=control.refuse_over_rows)
    if ctx.reason is None and (rows > control.reason_over_rows or carried):
        why = (TEXTS["export_over_rows"].format(limit=control.reason_over_rows) if rows > control.reason_over_rows
               else TEXTS["export_unmasked_pii"].format(fields=", ".join(carried)))
        raise ExportRefused("export_reason_required", rows=rows, why_zh=why.zh, why_en=why.en)
    if ctx.approval_id is not None and ctx.approved_rows is not None and rows > ctx.approved_rows:
        why = TEXTS["export_approval_grew"].format(approved=ctx.approved_rows, rows=rows)
        raise ExportRefused("export_approval_unusable", why_zh=why.zh, why_en=why.en)
    if control.approve_over_rows is not None and rows > control.approve_over_rows and ctx.approval_id is None:
        if control.approval is None:
            raise ExportRefused("export_too_large", rows=rows, limit=control.approve_over_rows)
        raise ExportHeld(rows, carried, control.approval)


def control_csv(text: str, control: ExportControl, ctx: ExportContext,
                labels: dict[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """Apply export control to a CSV answer (header row first). Its unmasked personal data is
    the ``unmasked_pii`` fields whose column (a path's last field, or a header label ``labels``
    maps to it) is in the header row.

    Returns:
        The watermarked CSV (CRLF rows) and the facts for the audit record
        (``{"export": {"rows", "reason", "unmasked_pii", "watermark"}}``).

    Raises:
        ExportRefused, ExportHeld: see :func:`check_rows`.
        csv.Error: not CSV.
    """
    rows = list(csv.reader(io.StringIO(text, newline="")))
    data_rows = max(0, len(rows) - 1)
    header = {(labels or {}).get(cell, cell) for cell in rows[0]} if rows else set()
    carried = tuple(f for f in control.unmasked_pii if f.rsplit(".", 1)[-1].removesuffix("[]") in header)
    check_rows(data_rows, control, ctx, carried)
    mark = watermark(ctx.decision_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for n, row in enumerate(rows):
        writer.writerow([*row, WATERMARK_COLUMN if n == 0 else mark])
    return out.getvalue(), {"export": facts(data_rows, carried, ctx)}


def facts(rows: int, pii: tuple[str, ...], ctx: ExportContext) -> dict[str, Any]:
    """What the audit record keeps of an export (``pii``: the unmasked personal data it carried;
    ``approval_id`` only for an approved download)."""
    kept: dict[str, Any] = {"rows": rows, "reason": ctx.reason, "unmasked_pii": list(pii),
                            "watermark": watermark(ctx.decision_id)}
    if ctx.approval_id is not None:
        kept["approval_id"] = ctx.approval_id
    return kept


def parse_reason(header: str | None) -> str | None:
    """The exporter's reason from ``X-Export-Reason`` (UTF-8, percent-encoded when not ASCII),
    trimmed; None when absent or blank.

    Raises:
        ValueError: longer than :data:`MAX_REASON` characters or not decodable.
    """
    from urllib.parse import unquote

    if header is None:
        return None
    reason = unquote(header, errors="strict").strip()
    if len(reason) > MAX_REASON:
        raise ValueError(f"the export reason is longer than {MAX_REASON} characters")
    return reason or None


def find_watermarks(text: str) -> list[str]:
    """The decision ids of every watermark in ``text``, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in WATERMARK.finditer(text):
        seen.setdefault(match.group(1), None)
    return list(seen)
