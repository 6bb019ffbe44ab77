"""Masking kinds: partial, keyed hash, amount band, month, null and redact, the same in JSON,
CSV, HTML tables and the approval views; a kind the value does not fit redacts (fail closed)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io

import pytest

from authorizer.authz.pdp import parse_decision
from authorizer.enforce.html_tables import rewrite_tables
from authorizer.enforce.mask_kinds import REMEMBERED_LENGTH, KeyedHasher, MaskKind, MaskKinds, parse_mask_kinds
from authorizer.enforce.obligations import mask_csv, mask_document

KEY = KeyedHasher(b"0123456789abcdef-test-key")
PHONE = MaskKind("partial", keep_first=3, keep_last=4)
BAND = MaskKind("band", width=100)
KINDS = MaskKinds({"customer_phone": PHONE, "amount": BAND, "items[].price": BAND,
                   "customer_id": MaskKind("hash"), "created_at": MaskKind("month"),
                   "note": MaskKind("null")}, KEY)


@pytest.mark.parametrize(("kind", "value", "masked"), [
    (PHONE, "13812341234", "138****1234"),
    (PHONE, 13812341234, "138****1234"),
    (PHONE, "1234567", "***"),  # keeping 7 characters of 7 would show it all
    (MaskKind("partial", 0, 4), "6222020200112233", "************2233"),
    (BAND, 1234.5, "1200~1300"),
    (BAND, 1200, "1200~1300"),
    (BAND, -50, "-100~0"),
    (BAND, "1,234.00", "1200~1300"),
    (MaskKind("band", width=0.5), 2.7, "2.5~3"),
    (BAND, "about a thousand", "***"),
    (BAND, True, "***"),
    (BAND, float("nan"), None),  # a number that is no number: redacted (numbers become null)
    (MaskKind("month"), "2026-03-14T10:00:00Z", "2026-03"),
    (MaskKind("month"), "2026/3/4", "2026-03"),
    (MaskKind("month"), "2026-13-01", "***"),
    (MaskKind("month"), "yesterday", "***"),
    (MaskKind("month"), 20260314, None),
    (MaskKind("null"), "x", None),
    (MaskKind("redact"), "x", "***"),
    (MaskKind("redact"), 12.5, None),
    (PHONE, None, None),
    (PHONE, {"a": 1}, "***"),
])
def test_each_kind_masks_a_value_or_redacts_what_it_does_not_fit(kind: MaskKind, value: object,
                                                                  masked: object) -> None:
    assert KINDS.value(kind, value) == masked


def test_a_keyed_hash_is_joinable_but_depends_on_the_key() -> None:
    kinds = MaskKinds({}, KEY)
    first, again = kinds.value(MaskKind("hash"), "C000123"), kinds.value(MaskKind("hash"), "C000123")
    assert first == again and first != "C000123" and str(first).startswith("h:") and len(str(first)) == 18
    assert kinds.value(MaskKind("hash"), "C000124") != first
    assert kinds.value(MaskKind("hash"), 123) == kinds.cell(MaskKind("hash"), "123")  # a JSON number and its CSV cell
    other = MaskKinds({}, KeyedHasher(b"another-key-of-16-bytes"))
    assert other.value(MaskKind("hash"), "C000123") != first
    assert MaskKinds({}, None).value(MaskKind("hash"), "C000123") == "***"  # no key: redacted


def test_a_short_hash_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        KeyedHasher(b"short")


def test_json_answers_are_masked_per_field_kind() -> None:
    order = {"customer_phone": "13812341234", "amount": 1234.5, "customer_id": "C1", "note": "fragile",
             "created_at": "2026-03-14 10:00:00", "customer_name": "张三",
             "items": [{"sku": "A", "price": 99.0}, {"sku": "B", "price": 250}]}
    listing = {"items": [dict(order)], "total": 1}
    paths = ("customer_phone", "amount", "customer_id", "note", "created_at", "customer_name", "items[].price")
    mask_document(order, paths, None, KINDS)
    assert order["customer_phone"] == "138****1234" and order["amount"] == "1200~1300"
    assert order["customer_id"] == KEY.digest("C1") and order["note"] is None and order["created_at"] == "2026-03"
    assert order["customer_name"] == "***"  # no kind: redacted
    assert [i["price"] for i in order["items"]] == ["0~100", "200~300"]
    mask_document(listing, paths, "items", KINDS)
    assert listing["items"][0]["customer_phone"] == "138****1234"
    assert listing["items"][0]["customer_id"] == order["customer_id"]


def test_csv_columns_are_masked_with_the_fields_kind_and_null_empties_the_cell() -> None:
    text = "order_no,手机,amount,note\r\nSO1,13812341234,1234.5,fragile\r\nSO2,,99,\r\n"
    out = mask_csv(text, ("customer_phone", "amount", "note"), {"手机": "customer_phone"}, KINDS)
    rows = list(csv.reader(io.StringIO(out)))
    assert rows == [["order_no", "手机", "amount", "note"], ["SO1", "138****1234", "1200~1300", ""],
                    ["SO2", "", "0~100", ""]]


def test_html_cells_are_masked_with_the_fields_kind() -> None:
    page = ("<table><tr><th>order_no</th><th>amount</th><th>customer_name</th></tr>"
            "<tr><td>SO1</td><td title='1234.5'>1234.5</td><td>&lt;b&gt;张三</td></tr></table>")
    result = rewrite_tables(page, None, frozenset(), frozenset({"amount", "customer_name"}),
                            lambda column, text: KINDS.cell(KINDS.of_column(("amount", "customer_name"), column), text))
    assert "<td>1200~1300</td>" in result.html and "<td>***</td>" in result.html
    assert "1234.5" not in result.html and "张三" not in result.html and result.cells_masked == 2


def test_a_column_named_by_several_paths_takes_the_strongest_kind() -> None:
    kinds = MaskKinds({"rows[].amount": BAND, "**.amount": MaskKind("null")}, KEY)
    assert kinds.of_column(("rows[].amount", "**.amount"), "amount").kind == "null"
    assert kinds.of_column(("rows[].amount",), "amount") == BAND
    assert kinds.of_column(("rows[].amount",), "other").kind == "redact"


def test_the_policy_obligation_is_validated_and_kept_only_for_masked_fields() -> None:
    assert parse_mask_kinds({"a": {"kind": "partial", "keep_first": 3, "keep_last": 4}}) == {"a": PHONE}
    for bad in ({"a": {"kind": "scramble"}}, {"a": {"kind": "partial", "keep_last": -1}},
                {"a": {"kind": "band", "width": 0}}, {"a": {"kind": "band", "width": "100"}}, ["a"]):
        with pytest.raises(ValueError):
            parse_mask_kinds(bad)
    decided = parse_decision({"allow": True, "obligations": {
        "mask": ["customer_phone"], "mask_kinds": {"customer_phone": {"kind": "partial", "keep_first": 3},
                                                   "amount": {"kind": "band", "width": 100}}}})
    assert decided.allow and decided.obligations.mask_kinds == {"customer_phone": MaskKind("partial", 3, 4)}
    refused = parse_decision({"allow": True, "obligations": {"mask": ["a"], "mask_kinds": {"a": {"kind": "x"}}}})
    assert not refused.allow and refused.reason.code == "pdp_malformed"  # the catalog code of obligations_malformed


def test_dates_and_absurd_numbers_never_crash_a_kind() -> None:
    import datetime as dt

    at = dt.datetime(2026, 3, 14, 10, 0)
    assert KINDS.value(MaskKind("month"), at) == "2026-03" and KINDS.value(MaskKind("month"), at.date()) == "2026-03"
    assert str(KINDS.value(MaskKind("hash"), at)).startswith("h:")
    assert KINDS.value(PHONE, at) == KINDS.value(PHONE, at.isoformat()) == "202************0:00"
    assert KINDS.value(BAND, "1e999999999") == "***" and KINDS.value(BAND, 10 ** 40) is None  # redacted


@pytest.mark.parametrize("remembered", [0, 2, 4096])
def test_a_remembered_digest_is_the_hmac_of_the_value(remembered: int) -> None:
    key = b"0123456789abcdef-test-key"
    hasher = KeyedHasher(key, remembered=remembered)
    long = "长" * (REMEMBERED_LENGTH + 1)  # longer than a kept value: still its HMAC
    values = ["C1", "C2", "客户3", "C1", "C4", "C2", "C1", long, long]  # repeats; more values than 2 are kept
    expected = ["h:" + hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:16] for v in values]
    assert [hasher.digest(v) for v in values] == expected
    assert len(set(expected)) == 5  # one digest per distinct value
