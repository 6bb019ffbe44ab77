"""Obligations on legacy HTML pages whose records are rows of ``<table>``s.

The route map declares such a page with ``html: tables``: every table's header
row names the record fields of its columns (``<th>warehouse</th>``). The rewrite
drops rows outside the person's scope (the safety net behind narrowing) and
replaces the content of masked columns with ``***``; the rest of the page is kept
byte for byte. Anything it cannot enforce raises ``ValueError`` so the PEP refuses
the answer (fail closed): a restricted dimension without a column, a data row
before any header, a cell outside a row.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Callable

MASK = "***"


@dataclass
class _Table:
    headers: list[str] = field(default_factory=list)
    saw_header: bool = False


@dataclass
class _Row:
    pieces: list[str] = field(default_factory=list)
    cells: dict[str, str] = field(default_factory=dict)
    header: bool = False
    column: int = -1


@dataclass
class RewriteResult:
    """The rewritten page and what was done: rows dropped, cells masked."""

    html: str
    rows_dropped: int
    cells_masked: int


class _Rewriter(HTMLParser):
    def __init__(self, keep_row: Callable[[dict[str, str]], bool] | None, needed_columns: frozenset[str],
                 masked: frozenset[str]) -> None:
        super().__init__(convert_charrefs=False)
        self._keep_row = keep_row
        self._needed = needed_columns
        self._masked = masked
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
        if tag == "table":
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
            self._row.column += 1
            self._row.header = self._row.header or tag == "th"
            self._emit(raw)
            self._cell_tag, self._cell_text = tag, []
            table = self._tables[-1]
            name = table.headers[self._row.column] if self._row.column < len(table.headers) else ""
            self._masking = tag == "td" and name in self._masked
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
        if self._masking:
            self._masking = False
            self._emit(MASK)
            self.masked_cells += 1
        table = self._tables[-1]
        if self._cell_tag == "th":
            table.headers.append(text)
        elif self._row.column < len(table.headers):
            self._row.cells[table.headers[self._row.column]] = text
        self._cell_tag = None

    def _end_row(self) -> None:
        self._end_cell()
        row = self._row
        if row is None:
            return
        self._row = None
        table = self._tables[-1]
        if row.header:
            table.saw_header = True
            missing = self._needed - set(table.headers)
            if missing and self._keep_row is not None:
                raise ValueError(f"the table has no column for {', '.join(sorted(missing))}")
        elif self._keep_row is not None:
            if not table.saw_header:
                raise ValueError("a data row before the table's header row")
            if not self._keep_row(row.cells):
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

    def handle_comment(self, data: str) -> None:
        self._emit(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self._emit(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self._emit(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self._emit(f"<![{data}]>")

    def finish(self) -> str:
        self.close()
        self._end_row()
        return "".join(self.out)


def rewrite_tables(page: str, keep_row: Callable[[dict[str, str]], bool] | None, needed_columns: frozenset[str],
                   masked: frozenset[str]) -> RewriteResult:
    """Filter and mask the tables of an HTML page.

    Args:
        page: the HTML text.
        keep_row: decides on a data row from ``{column name: cell text}``; None keeps every row.
        needed_columns: columns every table must have when rows are filtered (the restricted dimensions).
        masked: column (field) names whose cells become ``***``.

    Returns:
        The rewritten page with counts.

    Raises:
        ValueError: the page cannot be filtered as required (see the module docstring).
    """
    rewriter = _Rewriter(keep_row, needed_columns, masked)
    rewriter.feed(page)
    text = rewriter.finish()
    return RewriteResult(text, rewriter.dropped, rewriter.masked_cells)
