"""Times given by people: ``30m`` / ``1h`` / ``2d`` ago, or ISO 8601 (naive = UTC)."""

from __future__ import annotations

import datetime as dt
import re

_AGO = re.compile(r"^(\d+)([smhd])$")


def parse_time(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """Parse ``30m``/``1h``/``2d`` (that long before ``now``) or an ISO 8601 time into an aware UTC datetime.

    Args:
        value: the text.
        now: the reference instant (default: the current UTC time).

    Raises:
        ValueError: neither form.
    """
    now = now or dt.datetime.now(dt.UTC)
    m = _AGO.match(value.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return now - dt.timedelta(**{unit: int(m.group(1))})
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a duration (30m, 1h, 2d) or ISO time: {value!r}") from None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
