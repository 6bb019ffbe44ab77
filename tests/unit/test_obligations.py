"""Obligation enforcement: list narrowing, the row safety net, field masking."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from authorizer.authz.pdp import Obligations
from authorizer.authz.routes import ListSpec
from authorizer.enforce.obligations import filter_rows, mask_document, mask_fields, narrow_query

SPEC = ListSpec(rows="items", total="total", narrow={"warehouse": "warehouse", "channel": "channel"},
                row_fields={"warehouse": "warehouse", "channel": "channel", "order_type": "order_type"})


def test_scope_values_fill_an_absent_filter() -> None:
    n = narrow_query(MultiDict(), SPEC, Obligations(row_filter={"warehouse": ("HF", "SH"), "channel": ("*",)}))
    assert n.query is not None and n.query.getall("warehouse") == ["HF", "SH"]
    assert "channel" not in n.query and not n.empty


def test_client_values_are_intersected_with_the_scope() -> None:
    q = MultiDict([("warehouse", "HF"), ("warehouse", "SH"), ("page", "2")])
    n = narrow_query(q, SPEC, Obligations(row_filter={"warehouse": ("HF",)}))
    assert n.query is not None and n.query.getall("warehouse") == ["HF"] and n.query["page"] == "2"


def test_only_out_of_scope_values_mean_an_empty_answer() -> None:
    n = narrow_query(MultiDict([("warehouse", "SH")]), SPEC, Obligations(row_filter={"warehouse": ("HF",)}))
    assert n.empty


def test_star_scope_leaves_the_query_alone() -> None:
    q = MultiDict([("warehouse", "SH")])
    n = narrow_query(q, SPEC, Obligations(row_filter={"warehouse": ("*",), "channel": ("*",)}))
    assert n.query is None and not n.empty


def test_dimensions_the_wms_cannot_filter_are_reported() -> None:
    n = narrow_query(MultiDict(), SPEC, Obligations(row_filter={"order_type": ("b2c",)}))
    assert n.unnarrowed == ("order_type",)


def test_safety_net_drops_rows_outside_the_scope_or_missing_the_field() -> None:
    doc = {"items": [{"warehouse": "HF", "channel": "jd"}, {"warehouse": "SH", "channel": "jd"},
                     {"channel": "jd"}, "junk"], "total": 4}
    dropped = filter_rows(doc, SPEC, Obligations(row_filter={"warehouse": ("HF",), "channel": ("*",)}))
    assert dropped == 3 and doc["items"] == [{"warehouse": "HF", "channel": "jd"}]


def test_masking_keeps_keys_and_replaces_values() -> None:
    order = {"amount": 12.5, "customer_phone": "13800000000", "address": None, "note": "x",
             "items": [{"sku": "A", "price": 3.0}, {"sku": "B", "price": 4}]}
    mask_fields(order, ("amount", "customer_phone", "address", "items[].price", "absent"))
    assert order == {"amount": None, "customer_phone": "***", "address": None, "note": "x",
                     "items": [{"sku": "A", "price": None}, {"sku": "B", "price": None}]}


def test_masking_applies_to_every_row_of_a_list() -> None:
    doc = {"items": [{"amount": 1}, {"amount": 2}], "total": 2}
    mask_document(doc, ("amount",), "items")
    assert [r["amount"] for r in doc["items"]] == [None, None] and doc["total"] == 2


def test_csv_columns_are_masked_and_the_header_kept() -> None:
    from authorizer.enforce.obligations import mask_csv

    text = "channel,warehouse,revenue\r\namazon,HF,12.5\r\namazon,SH,\r\n"
    assert mask_csv(text, ("rows[].revenue",)) == "channel,warehouse,revenue\r\namazon,HF,***\r\namazon,SH,\r\n"


def test_csv_without_masked_columns_is_unchanged() -> None:
    from authorizer.enforce.obligations import mask_csv

    text = "a,b\r\n1,2\r\n"
    assert mask_csv(text, ("revenue",)) == text


def test_nested_object_paths_are_masked() -> None:
    order = {"customer_detail": {"name": "张三", "phone": "13800000000", "addr": {"city": "合肥", "line": "x"}},
             "phone": "kept"}
    mask_fields(order, ("customer_detail.phone", "customer_detail.addr.line", "customer_detail.absent.x"))
    assert order == {"customer_detail": {"name": "张三", "phone": "***", "addr": {"city": "合肥", "line": "***"}},
                     "phone": "kept"}


def test_double_star_masks_a_field_at_any_depth_through_lists() -> None:
    doc = {"phone": "1", "results": [{"supplier": {"phone": "2", "contacts": [{"phone": "3"}]}}, {"phone": 4}]}
    mask_fields(doc, ("**.phone",))
    assert doc == {"phone": "***", "results": [{"supplier": {"phone": "***", "contacts": [{"phone": "***"}]}},
                                                {"phone": None}]}


def test_lists_are_walked_with_or_without_brackets() -> None:
    a = {"items": [{"price": 1}, {"price": 2}]}
    b = {"items": [{"price": 1}, {"price": 2}]}
    mask_fields(a, ("items[].price",))
    mask_fields(b, ("items.price",))
    assert a == b == {"items": [{"price": None}, {"price": None}]}


def test_csv_columns_are_masked_by_label_too() -> None:
    from authorizer.enforce.obligations import mask_csv

    text = "商品编码,商品名称,商品成本\r\nA01,螺丝,1.25\r\n"
    assert mask_csv(text, ("**.goods_cost",), {"商品成本": "goods_cost"}) == \
        "商品编码,商品名称,商品成本\r\nA01,螺丝,***\r\n"



@pytest.mark.parametrize("text", [
    "商品导出 2024-11-01\r\n商品编码,商品成本\r\nA01,1.25\r\n",   # a title row first
    "商品编码;商品成本\r\nA01;1.25\r\n",                         # another delimiter
    "商品编码\t商品成本\r\nA01\t1.25\r\n",
    "商品编码,商品成本(元)\r\nA01,1.25\r\n",                     # a label with a unit
])
def test_csv_masking_fails_closed_when_the_masked_column_is_not_recognised(text: str) -> None:
    from authorizer.enforce.obligations import mask_csv

    with pytest.raises(ValueError, match="not a column"):
        mask_csv(text, ("goods_cost",), {"商品成本": "goods_cost"})
