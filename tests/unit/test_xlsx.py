"""XLSX answers: masked by kind per column, counted, refused or watermarked like CSV exports;
formulas and unreadable workbooks fail closed."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook, load_workbook

from authorizer.authz.pdp import ExportControl
from authorizer.enforce.exports import ExportContext, ExportRefused
from authorizer.enforce.mask_kinds import MaskKind, MaskKinds
from authorizer.enforce.xlsx import rewrite_xlsx

DECISION = "d" * 32
KINDS = MaskKinds({"rows[].revenue": MaskKind("band", width=1000)})


def _book(*rows: list[object], second: list[list[object]] | None = None) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    if second is not None:
        other = book.create_sheet("more")
        for row in second:
            other.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _rows(data: bytes) -> list[list[list[object]]]:
    book = load_workbook(io.BytesIO(data))
    return [[list(r) for r in sheet.iter_rows(values_only=True)] for sheet in book.worksheets]


def test_masked_columns_take_their_kind_on_every_sheet_and_labels_count() -> None:
    data = _book(["channel", "营收", "note"], ["amazon", 1234.5, "x"], ["jd", None, "y"],
                 second=[["channel", "revenue"], ["pdd", 99]])
    out, facts = rewrite_xlsx(data, ("rows[].revenue", "note"), {"营收": "revenue"}, KINDS)
    first, second = _rows(out)
    assert first == [["channel", "营收", "note"], ["amazon", "1000~2000", "***"], ["jd", None, "***"]]
    assert second == [["channel", "revenue"], ["pdd", "0~1000"]]
    assert facts == {"masked": ["rows[].revenue", "note"]}


def test_an_export_is_counted_over_all_sheets_refused_above_the_limit_and_watermarked() -> None:
    data = _book(["channel", "revenue"], ["amazon", 1], ["jd", 2], second=[["channel", "revenue"], ["pdd", 3]])
    out, facts = rewrite_xlsx(data, (), None, KINDS, ExportControl(10, 100), ExportContext(DECISION, None))
    assert facts["export"]["rows"] == 3 and facts["export"]["watermark"] == f"wmsgate:{DECISION}"
    first, second = _rows(out)
    assert first[0][-1] == "wmsgate_watermark" and {r[-1] for r in first[1:]} == {f"wmsgate:{DECISION}"}
    assert second[1][-1] == f"wmsgate:{DECISION}"
    assert load_workbook(io.BytesIO(out)).properties.keywords == f"wmsgate:{DECISION}"
    with pytest.raises(ExportRefused):
        rewrite_xlsx(data, (), None, KINDS, ExportControl(10, 2), ExportContext(DECISION, None))


def test_formulas_bad_workbooks_and_masked_names_outside_the_header_fail_closed() -> None:
    with pytest.raises(ValueError, match="formula"):
        rewrite_xlsx(_book(["channel", "revenue"], ["amazon", "=1+1"]), ("revenue",), None, KINDS)
    with pytest.raises(ValueError, match="not a readable XLSX"):
        rewrite_xlsx(b"PK\x03\x04 not really", ("revenue",), None, KINDS)
    with pytest.raises(ValueError, match="not a column"):
        rewrite_xlsx(_book(["销售报表"], ["revenue", "channel"], [1, "amazon"]), ("revenue",), None, KINDS)


def test_a_leaked_workbooks_watermark_is_read_back_from_its_cells_or_its_keywords() -> None:
    from authorizer.enforce.exports import find_watermarks
    from authorizer.enforce.xlsx import workbook_text

    data = _book(["channel", "revenue"], ["amazon", 1])
    out, _ = rewrite_xlsx(data, (), None, KINDS, ExportControl(10, 100), ExportContext(DECISION, None))
    assert find_watermarks(workbook_text(out)) == [DECISION]
    book = load_workbook(io.BytesIO(out))
    book.active.delete_cols(3)  # type: ignore[union-attr]  # the column cut out on purpose
    stripped = io.BytesIO()
    book.save(stripped)
    assert find_watermarks(workbook_text(stripped.getvalue())) == [DECISION]  # the keywords still name it


def test_a_masked_cell_loses_its_comment_and_link_and_array_formulas_or_names_are_refused() -> None:
    from openpyxl.comments import Comment
    from openpyxl.workbook.defined_name import DefinedName
    from openpyxl.worksheet.formula import ArrayFormula

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["channel", "phone"])
    sheet.append(["amazon", "13812345678"])
    sheet["B2"].comment = Comment("13812345678", "clerk")
    sheet["B2"].hyperlink = "tel:13812345678"
    out = io.BytesIO()
    book.save(out)
    masked, _ = rewrite_xlsx(out.getvalue(), ("phone",), None, MaskKinds())
    cell = load_workbook(io.BytesIO(masked)).active["B2"]  # type: ignore[index]
    assert cell.value == "***" and cell.comment is None and cell.hyperlink is None
    assert b"13812345678" not in masked

    sheet["A2"] = ArrayFormula("A2", "={B2}")
    array = io.BytesIO()
    book.save(array)
    with pytest.raises(ValueError, match="formula"):
        rewrite_xlsx(array.getvalue(), ("phone",), None, MaskKinds())
    sheet["A2"] = "amazon"
    book.defined_names["secret"] = DefinedName("secret", attr_text="Sheet!$B$2")
    named = io.BytesIO()
    book.save(named)
    with pytest.raises(ValueError, match="defined names"):
        rewrite_xlsx(named.getvalue(), ("phone",), None, MaskKinds())
