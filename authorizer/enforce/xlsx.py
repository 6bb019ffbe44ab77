"""Obligations on Excel (XLSX) answers: the same masks (by kind) and export control as CSV.

Every worksheet is a table whose first row names the columns (a path's last field, or a
header label the route map maps to a field). Masked columns are masked cell by cell with
the field's kind; an export's data rows are counted over all sheets, refused or held as the
policy says, and watermarked like CSV: a last column ``wmsgate_watermark`` on every sheet,
and the workbook's keywords. What the rewrite cannot vet fails closed (``ValueError``): a
formula anywhere (it could compute a masked value back), a workbook that will not open, or a
masked field that shows in a sheet's first rows other than as a header cell, defined names and
pivot tables (they can carry values past the cells). A masked cell also loses its comment and
hyperlink (either can hold the value). The XML is
parsed through defusedxml (openpyxl uses it when installed): no entity expansion bombs.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula
from openpyxl.worksheet.worksheet import Worksheet

from authorizer.authz.pdp import ExportControl
from authorizer.enforce.exports import WATERMARK_COLUMN, ExportContext, check_rows, facts, watermark
from authorizer.enforce.mask_kinds import MaskKind, MaskKinds
from authorizer.enforce.obligations import column_names

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _open(data: bytes) -> Workbook:
    try:
        return load_workbook(io.BytesIO(data), data_only=False)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, TypeError, OSError) as exc:
        raise ValueError(f"not a readable XLSX workbook: {type(exc).__name__}") from None


def _header(sheet: Worksheet) -> list[str]:
    first = next(sheet.iter_rows(min_row=1, max_row=1, values_only=True), ())
    return ["" if value is None else str(value).strip() for value in first]


def _masked_columns(header: list[str], paths: tuple[str, ...], labels: dict[str, str],
                    kinds: MaskKinds) -> dict[int, MaskKind]:
    columns = column_names(paths)
    masked = {}
    for index, name in enumerate(header):
        field = name if name in columns else labels.get(name, "")
        if field in columns:
            masked[index] = kinds.of_column(paths, field)
    return masked


def _vet_book(book: Workbook) -> None:
    """Refuse what can carry values past the cells: defined names and pivot tables."""
    if len(book.defined_names) or any(sheet.defined_names for sheet in book.worksheets):
        raise ValueError("the workbook has defined names; they cannot be vetted")
    if any(getattr(sheet, "_pivots", None) for sheet in book.worksheets):
        raise ValueError("the workbook has pivot tables; their caches cannot be vetted")


def _vet(sheet: Worksheet, names: set[str]) -> None:
    """Refuse a formula anywhere (text, array or data-table formulas), and any of ``names`` in
    the first rows below the header."""
    for row_number, row in enumerate(sheet.iter_rows(), start=1):
        for cell in row:
            value = cell.value
            if cell.data_type == "f" or isinstance(value, (ArrayFormula, DataTableFormula)) \
                    or (isinstance(value, str) and value.startswith("=")):
                raise ValueError(f"sheet {sheet.title!r} holds a formula; it cannot be vetted")
            if 1 < row_number <= 5 and isinstance(value, str) and value.strip() in names:
                raise ValueError(f"masked column {value.strip()!r} is not a column of sheet {sheet.title!r}'s "
                                 "header row")


def rewrite_xlsx(data: bytes, paths: tuple[str, ...], labels: dict[str, str] | None, kinds: MaskKinds,
                 control: ExportControl | None = None, ctx: ExportContext | None = None
                 ) -> tuple[bytes, dict[str, Any]]:
    """Mask an XLSX answer and, for an export, count, check and watermark it.

    Args:
        data: the workbook's bytes.
        paths: the masked field paths (their last field names a column).
        labels: header label -> field name (the route map's ``columns``).
        kinds: how each masked field is masked.
        control, ctx: the export obligation and who exports why (both or neither).

    Returns:
        The new workbook's bytes and facts for the audit record (``masked``; ``export``).

    Raises:
        ValueError: see the module docstring.
        ExportRefused, ExportHeld: see :func:`authorizer.enforce.exports.check_rows`.
    """
    book = _open(data)
    _vet_book(book)
    labels = labels or {}
    names = set(column_names(paths)) | {label for label, name in labels.items() if name in column_names(paths)}
    data_rows, carried = 0, set()
    for sheet in book.worksheets:
        header = _header(sheet)
        masked = _masked_columns(header, paths, labels, kinds)
        _vet(sheet, names if not masked else set())
        for row in sheet.iter_rows(min_row=2):
            for index, cell in enumerate(row):
                if index in masked:  # what a cell carries besides its value can hold it too
                    cell.comment, cell.hyperlink = None, None
                    if cell.value not in (None, ""):
                        cell.value = kinds.value(masked[index], cell.value)
        data_rows += max(0, sheet.max_row - 1)
        if control is not None:
            fields = {labels.get(name, name) for name in header}
            carried |= {f for f in control.unmasked_pii if f.rsplit(".", 1)[-1].removesuffix("[]") in fields}
    facts_out: dict[str, Any] = {"masked": list(paths)} if paths else {}
    if control is not None and ctx is not None:
        pii = tuple(sorted(carried))
        check_rows(data_rows, control, ctx, pii)
        mark = watermark(ctx.decision_id)
        for sheet in book.worksheets:
            column = sheet.max_column + 1
            sheet.cell(row=1, column=column, value=WATERMARK_COLUMN)
            for row_number in range(2, sheet.max_row + 1):
                sheet.cell(row=row_number, column=column, value=mark)
        book.properties.keywords = mark
        facts_out.update({"export": facts(data_rows, pii, ctx)})
    out = io.BytesIO()
    book.save(out)
    return out.getvalue(), facts_out


def workbook_text(data: bytes) -> str:
    """Every cell's text and the workbook's keywords, one per line (where a watermark is read
    back from a leaked workbook: ``wmsgate audit find-export``).

    Raises:
        ValueError: not a readable workbook.
    """
    book = _open(data)
    texts = [str(book.properties.keywords or "")]
    for sheet in book.worksheets:
        texts.extend(str(value) for row in sheet.iter_rows(values_only=True) for value in row if value is not None)
    return "\n".join(texts)
