"""Grant rows: an absolute window, or ``hours`` that start when the row is carried out."""

from __future__ import annotations

import time

import pytest

from authorizer.iam.grants import GrantError, GrantRow

BASE = {"username": "temp.hf.001", "role": "temp_picker", "warehouses": "HF", "channels": "*", "order_types": "*"}


def test_hours_start_when_the_row_is_carried_out() -> None:
    before = int(time.time())
    row = GrantRow.parse({**BASE, "hours": "1.5"}, 1)
    assert before <= row.valid_from <= int(time.time()) and row.valid_until - row.valid_from == 5400


@pytest.mark.parametrize(("extra", "message"), [
    ({"hours": "0"}, "more than 0"), ({"hours": "721"}, "at most 720"), ({"hours": "soon"}, "must be a number"),
    ({"hours": "2", "valid_until": "2026-12-08T00:00"}, "not both"),
])
def test_bad_hours_are_refused(extra: dict[str, str], message: str) -> None:
    with pytest.raises(GrantError, match=message):
        GrantRow.parse({**BASE, **extra}, 1)


def test_an_absolute_window_still_works() -> None:
    row = GrantRow.parse({**BASE, "valid_from": "2026-12-07T08:00", "valid_until": "2026-12-07T20:00"}, 1)
    assert row.valid_until - row.valid_from == 12 * 3600


@pytest.mark.parametrize("hours", ["inf", "1e400", "nan"])
def test_hours_that_are_no_number_of_hours_are_refused(hours: str) -> None:
    with pytest.raises(GrantError):
        GrantRow.parse({**BASE, "hours": hours}, 1)
