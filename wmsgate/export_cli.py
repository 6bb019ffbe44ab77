"""``wmsgate audit find-export FILE``: who exported a (leaked) file, from its watermark.

Reads the file as text (CSV, JSON, anything the watermark survives in), or an Excel
workbook's cells and keywords, finds every ``wmsgate:<decision id>`` in it
and prints the audit record of each export: who, when (UTC and Beijing time), from where,
what, how many rows and the reason they gave.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from authorizer.audit import AuditStore
from authorizer.enforce.exports import find_watermarks
from authorizer.enforce.xlsx import workbook_text

BEIJING = dt.timezone(dt.timedelta(hours=8))


async def exports_of(url: str, decision_ids: list[str]) -> list[tuple[str, dict[str, Any] | None]]:
    """The audit record of each decision id (None when the trail has no such record)."""
    store = AuditStore(url)
    try:
        return [(decision_id, await store.record(decision_id)) for decision_id in decision_ids]
    finally:
        await store.close()


def _detail(record: dict[str, Any]) -> dict[str, Any]:
    detail = record.get("detail") or {}
    return detail if isinstance(detail, dict) else json.loads(detail)


def find_export(file: Path, url: str, as_json: bool) -> int:
    """Print who exported ``file``.

    Returns:
        0 when every watermark was found in the audit trail; 1 when the file has none, or
        carries a watermark the trail does not know (forged, or from another gateway); 2 when
        the file cannot be read.
    """
    try:
        data = file.read_bytes()
        text = workbook_text(data) if data.startswith(b"PK\x03\x04") else data.decode("utf-8-sig", errors="replace")
    except (OSError, ValueError) as exc:
        print(f"wmsgate: {file}: {exc}", file=sys.stderr)
        return 2
    found = find_watermarks(text)
    if not found:
        print(f"未找到水印 / no watermark in {file}: it did not leave through the gateway as an export, or the "
              "watermark column was removed")
        return 1
    results = asyncio.run(exports_of(url, found))
    if as_json:
        print(json.dumps([{"decision_id": d, "record": r} for d, r in results], ensure_ascii=False, default=str,
                         indent=2))
    for decision_id, record in results if not as_json else []:
        if record is None:
            print(f"{decision_id}: 审计日志中没有此导出 / not in the audit trail (forged, or another gateway's)")
            continue
        when = dt.datetime.fromtimestamp(record["ts_ms"] / 1000, dt.UTC)
        export = _detail(record).get("export") or {}
        print(f"{decision_id}: {record['username']} 于 {when.astimezone(BEIJING):%Y-%m-%d %H:%M:%S} (北京时间) / "
              f"at {when:%Y-%m-%d %H:%M:%S} UTC from {record['client_ip']}: {record['method']} {record['path']}"
              f"{'?' + record['query'] if record['query'] else ''}, {export.get('rows', '?')} rows, "
              f"reason: {export.get('reason') or '-'}")
    return 0 if all(record is not None for _, record in results) else 1
