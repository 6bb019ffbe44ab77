"""Row filter and masks on legacy HTML tables."""

from __future__ import annotations

import pytest

from authorizer.enforce.html_tables import rewrite_tables

PAGE = """<!doctype html><html><body><h1>订单列表 Orders</h1><nav><a href="/">首页</a></nav>
<table border=1><thead><tr><th>order_no</th><th>warehouse</th><th>customer_name</th><th>amount</th></tr></thead>
<tbody><tr><td>SO1</td><td>HF</td><td>张&amp;三</td><td>10.5</td></tr>
<tr><td>SO2</td><td>SH</td><td>李四</td><td>20</td></tr>
<tr><td>SO3</td><td>HF</td><td>王五</td><td>30</td></tr></tbody></table><p>&copy; 2024</p></body></html>"""


def hf_only(cells: dict[str, str]) -> bool:
    return cells.get("warehouse") == "HF"


def test_rows_outside_the_scope_are_dropped_and_the_rest_is_kept_byte_for_byte() -> None:
    result = rewrite_tables(PAGE, hf_only, frozenset({"warehouse"}), frozenset())
    assert result.rows_dropped == 1
    assert "SO2" not in result.html and "李四" not in result.html
    assert result.html == PAGE.replace("<tr><td>SO2</td><td>SH</td><td>李四</td><td>20</td></tr>", "")


def test_masked_columns_show_stars_and_headers_stay() -> None:
    result = rewrite_tables(PAGE, None, frozenset(), frozenset({"customer_name", "amount"}))
    assert result.cells_masked == 6
    assert "张&amp;三" not in result.html and "10.5" not in result.html and "王五" not in result.html
    assert "<th>customer_name</th>" in result.html and "<td>***</td>" in result.html
    assert "<td>SO1</td><td>HF</td>" in result.html and "&copy; 2024" in result.html


def test_rows_without_closing_tags_are_handled() -> None:
    page = "<table><tr><th>warehouse<th>qty<tr><td>HF<td>1<tr><td>SH<td>2</table>"
    result = rewrite_tables(page, hf_only, frozenset({"warehouse"}), frozenset({"qty"}))
    assert result.rows_dropped == 1 and "SH" not in result.html and "<td>***" in result.html


@pytest.mark.parametrize("page", [
    "<table><tr><th>order_no</th></tr><tr><td>SO1</td></tr></table>",  # no warehouse column to filter by
    "<table><tr><td>HF</td></tr></table>",  # a data row before any header
    "<td>HF</td>",  # a cell outside a row
])
def test_pages_that_cannot_be_filtered_are_refused(page: str) -> None:
    with pytest.raises(ValueError):
        rewrite_tables(page, hf_only, frozenset({"warehouse"}), frozenset())


def test_a_row_starting_with_a_th_is_still_a_data_row_and_is_filtered_and_masked() -> None:
    page = ("<table><tr><th>order_no</th><th>warehouse</th><th>customer_name</th></tr>"
            "<tr><th scope=row>SO1</th><td>HF</td><td>Ann</td></tr>"
            "<tr><th scope=row>SO2</th><td>SH</td><td>Bob</td></tr></table>")
    result = rewrite_tables(page, hf_only, frozenset({"warehouse"}), frozenset({"customer_name"}))
    assert "SO2" not in result.html and "Bob" not in result.html and "Ann" not in result.html
    assert result.rows_dropped == 1 and result.cells_masked == 2  # the dropped row's cell counts too


def test_masked_cells_lose_their_attributes_too() -> None:
    page = '<table><tr><th>customer_name</th></tr><tr><td title="Bob 138">Bob</td></tr></table>'
    result = rewrite_tables(page, None, frozenset(), frozenset({"customer_name"}))
    assert "Bob" not in result.html and "<td>***</td>" in result.html


def test_comments_and_cdata_are_dropped_so_parser_differences_cannot_leak_rows() -> None:
    page = ("<table><tr><th>warehouse</th><th>customer_name</th></tr>"
            "<!-- x --!><tr><td>SH</td><td>Bob</td></tr><!-- -->"
            "<![CDATA[ <tr><td>SH</td><td>Eve</td></tr> ]]><tr><td>HF</td><td>Ann</td></tr></table>")
    result = rewrite_tables(page, hf_only, frozenset({"warehouse"}), frozenset())
    assert "Bob" not in result.html and "Eve" not in result.html and "<td>HF</td>" in result.html


@pytest.mark.parametrize("page", [
    "<table><tr><th>warehouse</th><th colspan=2>x</th><th>customer_name</th></tr></table>",
    "<table><tr><th>warehouse</th></tr><tr><td rowspan=2>HF</td></tr></table>",
    "<table><tr><th>warehouse</th></tr><tr><td>HF<table><tr><td>SH</td></tr></table></td></tr></table>",
    "<table><tr><th>warehouse</th></tr><tr><td>HF</td></tr></table><script>var rows=[['SH','Bob']]</script>",
    "<template><table><tr><td>SH</td></tr></table></template>",
])
def test_markup_the_rewrite_cannot_vet_is_refused(page: str) -> None:
    with pytest.raises(ValueError):
        rewrite_tables(page, hf_only, frozenset({"warehouse"}), frozenset({"customer_name"}))


def test_masking_alone_refuses_a_table_whose_columns_cannot_be_named() -> None:
    with pytest.raises(ValueError):
        rewrite_tables("<table><tr><td>Bob</td></tr></table>", None, frozenset(), frozenset({"customer_name"}))
