"""Command-line helpers of wmsgate."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from wmsgate.cli import build_parser, format_table, parse_time

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("text, expected", [
    ("30m", NOW - dt.timedelta(minutes=30)), ("1h", NOW - dt.timedelta(hours=1)),
    ("2d", NOW - dt.timedelta(days=2)), ("2026-11-29T10:00:00", dt.datetime(2026, 11, 29, 10, tzinfo=dt.UTC)),
    ("2026-11-29T18:00:00+08:00", dt.datetime(2026, 11, 29, 10, tzinfo=dt.UTC)),
])
def test_parse_time(text: str, expected: dt.datetime) -> None:
    assert parse_time(text, NOW) == expected


def test_parse_time_rejects_nonsense() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_time("yesterday", NOW)


def test_table_shows_utc_milliseconds() -> None:
    out = format_table([{"ts_ms": 1716215400123, "username": "picker.hf", "decision": "allow", "http_status": 200,
                         "module": "orders", "verb": "pick", "resource_id": "12345", "warehouse": "HF",
                         "reason_code": "allowed", "client_ip": "127.0.0.1"}])
    assert "2024-05-20 14:30:00.123" in out and "picker.hf" in out and "pick" in out


def test_audit_search_arguments() -> None:
    args = build_parser().parse_args(["audit", "search", "--user", "u", "--since", "1h", "--module", "orders",
                                      "--verb", "pick", "--json"])
    assert args.user == "u" and args.module == "orders" and args.verb == "pick" and args.json

