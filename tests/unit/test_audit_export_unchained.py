"""``audit verify-export`` on a trail that began before it was hash-chained."""

from __future__ import annotations

import json

from authorizer.audit.chain import GENESIS, chain_hash
from authorizer.audit.export import verify_jsonl


def _chained(seq: int, prev: str) -> dict:
    doc = {"seq": seq, "decision_id": f"d{seq}", "prev_hash": prev}
    doc["hash"] = chain_hash(doc, prev)
    return doc


def test_leading_unchained_records_pass_but_a_hash_stripped_later_is_altered() -> None:
    old = {"seq": 1, "decision_id": "d1", "hash": None, "prev_hash": None}
    first = _chained(2, GENESIS)
    second = _chained(3, first["hash"])
    checked, problems = verify_jsonl([json.dumps(d) for d in (old, first, second)], None)
    assert checked == 2 and [p.kind for p in problems] == ["no_chain_head"]  # no head in this sample
    stripped = {**second, "hash": None, "prev_hash": None}
    _, problems = verify_jsonl([json.dumps(d) for d in (old, first, stripped)], None)
    assert {"altered", "link_broken"} <= {p.kind for p in problems}
