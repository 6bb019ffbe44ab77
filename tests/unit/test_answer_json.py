"""The WMS answer codec reads every document exactly as the standard library does (orjson only
where that is certain) and writes it back with the encoder that read it."""

from __future__ import annotations

import json
import math

import pytest

from proxy import answer_json

SAME_AS_STDLIB = [
    b'{"order_no": "SO1", "amount": 12.5, "items": [{"sku": "A", "price": 3}], "customer_phone": "138"}',
    b'{"a": 1, "a": 2}',                                   # duplicate keys: the last wins in both
    b'{"id": 9223372036854775807, "neg": -9223372036854775808}',
    b'{"big": -9223372036854775809}',                       # beyond 64 bits: orjson would make it a float
    b'{"big": 123456789012345678901234567890}',
    b'{"x": 1e400}',                                        # out of range: inf in the standard library
    b'{"s": "\\ud800"}',                                    # a lone surrogate escape
    b'[NaN, Infinity, -Infinity]',
    '{"名": "合肥仓"}'.encode("utf-16"),                      # UTF-16 with a BOM
    b'{"f": [1.5e-7, 0.1, 123456789.123456789, 1e16]}',
]


@pytest.mark.parametrize("raw", SAME_AS_STDLIB, ids=range(len(SAME_AS_STDLIB)))
def test_documents_read_as_the_standard_library_reads_them(raw: bytes) -> None:
    parsed = answer_json.loads(raw)
    expected = json.loads(raw)
    assert json.dumps(parsed.document, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert _same(parsed.document, expected)
    try:  # written back without loss, or refused as the standard library refuses it (a lone surrogate)
        json.dumps(expected, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            answer_json.dumps(parsed)
        return
    assert _same(json.loads(answer_json.dumps(parsed)), expected)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def test_the_fast_path_is_taken_for_ordinary_answers_only() -> None:
    assert answer_json.loads(SAME_AS_STDLIB[0]).fast
    assert not answer_json.loads(b'{"big": -9223372036854775809}').fast
    assert not answer_json.loads(b"[NaN]").fast


@pytest.mark.parametrize("raw", [b"", b"{", b'{"a": }', b"\xff\xfe\x00", b"[1] [2]"])
def test_what_is_not_json_is_refused_like_the_standard_library_refuses_it(raw: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(ValueError):
        answer_json.loads(raw)
