"""Obligations on legacy HTML pages whose records are rows of ``<table>``s.

The route map declares such a page with ``html: tables``: records appear only as
table rows, and every table's first row (all ``<th>``) names the record fields of its
columns (``<th>warehouse</th>``). The rewrite drops rows outside the person's scope
(the safety net behind narrowing) and replaces masked cells (content and attributes)
with their masked text (``***`` unless the field's kind says otherwise); comments, CDATA
and processing instructions are dropped; the rest of the page is kept. Anything it
cannot enforce raises ``ValueError`` so the PEP refuses the answer (fail closed): a
restricted dimension without a column, a data row before the header row, cells spanning
rows or columns, a table nested in a cell, a cell outside a row, and elements whose
content cannot be vetted (script, template, iframe, object, embed, noscript, frames).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser

MASK = "***"


@dataclass
class _Table:
    headers: list[str] = field(default_factory=list)
    saw_header: bool = False


@dataclass
class _Row:
    pieces: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    all_th: bool = True
    column: int = -1

    def is_header(self, table: _Table) -> bool:
        """Only a table's first row, and only if every cell is a ``<th>``, names the columns."""
        return not table.saw_header and self.all_th and self.column >= 0


#: Elements whose content a browser shows or runs but a table rewrite cannot vet.
_UNVETTABLE = frozenset({"script", "template", "iframe", "object", "embed", "noscript", "frame", "frameset"})


@dataclass
class RewriteResult:
    """The rewritten page and what was done: rows dropped, cells masked."""

    html: str
    rows_dropped: int
    cells_masked: int


class _Rewriter(HTMLParser):
    def __init__(self, keep_row: Callable[[dict[str, str]], bool] | None, needed_columns: frozenset[str],
                 masked: frozenset[str], mask_cell: Callable[[str, str], str]) -> None:
        super().__init__(convert_charrefs=False)
        self._strict = keep_row is not None or bool(masked)
        self._keep_row = keep_row
        self._needed = needed_columns
        self._masked = masked
        self._mask_cell = mask_cell
        self._masking_column = ""
        self.out: list[str] = []
        self._tables: list[_Table] = []
        self._row: _Row | None = None
        self._cell_tag: str | None = None
        self._cell_text: list[str] = []
        self._masking = False
        self.dropped = 0
        self.masked_cells = 0

    # -- output ------------------------------------------------------------------------
    def _emit(self, text: str) -> None:
        if self._masking:
            return
        (self._row.pieces if self._row is not None else self.out).append(text)

    # -- structure ---------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text() or f"<{tag}>"
        if self._strict and tag in _UNVETTABLE:
            raise ValueError(f"a <{tag}> element on a page whose tables must be filtered or masked")
        if tag == "table":
            if self._strict and self._cell_tag is not None:
                raise ValueError("a table nested in a table cell")
            self._end_row()
            self._tables.append(_Table())
        elif tag == "tr":
            self._end_row()
            if not self._tables:
                raise ValueError("a table row outside a table")
            self._row = _Row()
        elif tag in ("td", "th"):
            self._end_cell()
            if self._row is None:
                raise ValueError("a table cell outside a row")
            if self._strict and any(name in ("colspan", "rowspan") for name, _ in attrs):
                raise ValueError("a table cell spanning columns or rows")
            self._row.column += 1
            self._row.all_th = self._row.all_th and tag == "th"
            table = self._tables[-1]
            name = table.headers[self._row.column] if self._row.column < len(table.headers) else ""
            masking = table.saw_header and name in self._masked
            self._emit(f"<{tag}>" if masking else raw)  # a masked cell's attributes may carry the value too
            self._cell_tag, self._cell_text = tag, []
            self._masking, self._masking_column = masking, name
            return
        self._emit(raw)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._emit(self.get_starttag_text() or f"<{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._end_cell()
            self._emit(f"</{tag}>")
            return
        if tag == "tr":
            self._end_cell()
            if self._row is not None:
                self._row.pieces.append("</tr>")
                self._end_row()
            return
        if tag == "table":
            self._end_row()
            self._emit("</table>")
            if self._tables:
                self._tables.pop()
            return
        self._emit(f"</{tag}>")

    def _end_cell(self) -> None:
        if self._cell_tag is None or self._row is None:
            return
        text = html.unescape("".join(self._cell_text)).strip()
        self._row.texts.append(text)
        if self._masking:
            self._masking = False
            self._emit(html.escape(self._mask_cell(self._masking_column, text)))
            self.masked_cells += 1
        self._cell_tag = None

    def _end_row(self) -> None:
        self._end_cell()
        row = self._row
        if row is None:
            return
        self._row = None
        table = self._tables[-1]
        if row.is_header(table):
            table.saw_header = True
            table.headers = row.texts
            missing = self._needed - set(table.headers)
            if missing and self._keep_row is not None:
                raise ValueError(f"the table has no column for {', '.join(sorted(missing))}")
        elif self._strict:
            if not table.saw_header:
                raise ValueError("a data row before the table's header row (its columns cannot be named)")
            if self._keep_row is not None and not self._keep_row(dict(zip(table.headers, row.texts, strict=False))):
                self.dropped += 1
                return
        self.out.extend(row.pieces)

    # -- text --------------------------------------------------------------------------
    def handle_data(self, data: str) -> None:
        if self._cell_tag is not None:
            self._cell_text.append(data)
        self._emit(data)

    def handle_entityref(self, name: str) -> None:
        self.handle_data(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.handle_data(f"&#{name};")

    # Comments, CDATA sections and processing instructions are dropped: browsers and this
    # parser may disagree about where they end, and nothing in them is meant to be seen.
    def handle_comment(self, data: str) -> None:
        if not self._strict:
            self._emit(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self._emit(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        if not self._strict:
            self._emit(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        if not self._strict:
            self._emit(f"<![{data}]>")

    def finish(self) -> str:
        self.close()
        self._end_row()
        return "".join(self.out)


def _redact_cell(column: str, text: str) -> str:
    return MASK


def rewrite_tables(page: str, keep_row: Callable[[dict[str, str]], bool] | None, needed_columns: frozenset[str],
                   masked: frozenset[str], mask_cell: Callable[[str, str], str] = _redact_cell) -> RewriteResult:
    """Filter and mask the tables of an HTML page.

    Args:
        page: the HTML text.
        keep_row: decides on a data row from ``{column name: cell text}``; None keeps every row.
        needed_columns: columns every table must have when rows are filtered (the restricted dimensions).
        masked: column (field) names whose cells are masked.
        mask_cell: ``(column, cell text) -> masked text`` (its kind of mask); by default ``***``.

    Returns:
        The rewritten page with counts.

    Raises:
        ValueError: the page cannot be filtered as required (see the module docstring).
    """
    rewriter = _Rewriter(keep_row, needed_columns, masked, mask_cell)
    rewriter.feed(page)
    text = rewriter.finish()
    return RewriteResult(text, rewriter.dropped, rewriter.masked_cells)
