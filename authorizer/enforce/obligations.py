"""Enforcing a decision's obligations: narrowing list queries, filtering rows, masking fields."""

from __future__ import annotations

import csv
import functools
import io
import re
from dataclasses import dataclass
from typing import Any

from multidict import MultiDict, MultiMapping

from authorizer.authz.pdp import Obligations
from authorizer.authz.routes import ListSpec

ALL = "*"


@dataclass(frozen=True)
class Narrowing:
    """The outcome of narrowing a list query to the caller's scope.

    Attributes:
        query: the query to send upstream (None when unchanged).
        empty: the caller asked only for values outside their scope; answer an
            empty list without asking the WMS.
        unnarrowed: dimensions the WMS cannot filter while the caller's scope on
            them is limited; their rows are filtered one by one after the answer.
    """

    query: MultiDict[str] | None
    empty: bool
    unnarrowed: tuple[str, ...]


def narrow_query(query: MultiMapping[str], spec: ListSpec, obligations: Obligations) -> Narrowing:
    """Rewrite a list request's query so the WMS returns only in-scope rows.

    For each dimension of the row filter: with a ``*`` scope the query is left
    alone; otherwise the client's values for the WMS filter parameter are
    intersected with the scope (absent values become the whole scope).

    Args:
        query: the client's decoded query.
        spec: the route's list description (which parameter filters which dimension).
        obligations: the decision's obligations (``row_filter``).

    Returns:
        The narrowing to apply.
    """
    new = MultiDict(query)
    changed, unnarrowed = False, []
    for dim, allowed in obligations.row_filter.items():
        if ALL in allowed:
            continue
        param = spec.narrow.get(dim)
        if param is None:
            unnarrowed.append(dim)
            continue
        asked = query.getall(param, [])
        keep = [v for v in asked if v in allowed] if asked else list(allowed)
        if not keep:
            return Narrowing(None, True, ())
        if keep != asked:
            new.popall(param, None)
            for value in keep:
                new.add(param, value)
            changed = True
    return Narrowing(new if changed else None, False, tuple(unnarrowed))


def row_in_scope(row: Any, spec: ListSpec, obligations: Obligations) -> bool:
    """True when ``row`` carries an allowed value on every restricted dimension (rows lacking one are out)."""
    if not isinstance(row, dict):
        return False
    for dim, allowed in obligations.row_filter.items():
        if ALL in allowed:
            continue
        if str(row.get(spec.row_fields.get(dim, dim))) not in allowed:
            return False
    return True


def filter_rows(document: Any, spec: ListSpec, obligations: Obligations) -> int:
    """Drop out-of-scope rows from a list answer in place (the safety net behind narrowing).

    Returns:
        How many rows were dropped.

    Raises:
        ValueError: the answer has no rows array where the route map says.
    """
    if not isinstance(document, dict) or not isinstance(document.get(spec.rows), list):
        raise ValueError(f"answer has no '{spec.rows}' list")
    rows = document[spec.rows]
    kept = [row for row in rows if row_in_scope(row, spec, obligations)]
    dropped = len(rows) - len(kept)
    document[spec.rows] = kept
    return dropped


def _mask_value(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return None
    if value is None:
        return None
    return "***"


def mask_fields(record: Any, paths: tuple[str, ...]) -> None:
    """Mask fields of one record in place: the key stays, the value becomes ``"***"`` (numbers: null).

    Args:
        record: a JSON value (objects and lists are walked; scalars are left alone).
        paths: dotted field paths: ``amount`` (a member), ``customer_detail.phone`` (a member
            of a nested object), ``items[].price`` or ``items.price`` (a member of every
            element of a list: lists are walked through either way), ``**.phone`` (a member
            named ``phone`` at any depth).
    """
    _mask_parsed(record, _parse_paths(paths))


@functools.lru_cache(maxsize=256)
def _parse_paths(paths: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """``("items[].price", "amount")`` as ``(("items", "price"), ("amount",))`` (parsed once per mask)."""
    return tuple(tuple(p.removesuffix("[]") for p in path.split(".")) for path in paths)


def _mask_parsed(record: Any, parsed: tuple[tuple[str, ...], ...]) -> None:
    for parts in parsed:
        if len(parts) == 1 and isinstance(record, dict) and parts[0] != "**":  # a member: the usual case
            if parts[0] in record:
                record[parts[0]] = _mask_value(record[parts[0]])
            continue
        _mask_path(record, parts)


def _mask_path(node: Any, parts: tuple[str, ...]) -> None:
    if not parts:
        return
    if isinstance(node, list):
        for element in node:
            _mask_path(element, parts)
        return
    if not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    if head == "**":
        _mask_path(node, rest)  # zero levels down
        for value in node.values():
            if isinstance(value, (dict, list)):
                _mask_path(value, parts)
        return
    if head not in node:
        return
    if rest:
        _mask_path(node[head], rest)
    else:
        node[head] = _mask_value(node[head])


def column_names(paths: tuple[str, ...]) -> frozenset[str]:
    """The column names a flattened answer (CSV, an HTML table) carries masked ``paths`` under:
    each path's last field (``rows[].revenue``, ``**.revenue`` and ``revenue`` all name ``revenue``)."""
    return frozenset(path.rsplit(".", 1)[-1].removesuffix("[]") for path in paths)


def mask_document(document: Any, paths: tuple[str, ...], rows_key: str | None) -> None:
    """Mask ``paths`` in a single record, or in every row of a list answer when ``rows_key`` is given."""
    if not paths:
        return
    parsed = _parse_paths(paths)
    if rows_key is not None and isinstance(document, dict) and isinstance(document.get(rows_key), list):
        for row in document[rows_key]:
            _mask_parsed(row, parsed)
    else:
        _mask_parsed(document, parsed)


_CELL_SPLIT = re.compile(r"[,;\t|]")


def _refuse_unrecognized_header(text: str, names: frozenset[str] | set[str]) -> None:
    """Raise when a masked name starts a cell of the first lines although no header column is it."""
    for line in text.splitlines()[:5]:
        for cell in _CELL_SPLIT.split(line):
            cell = cell.strip().strip('"')
            if any(name and cell.startswith(name) for name in names):
                raise ValueError(f"masked column {cell!r} is not a column of the CSV's header row")


def mask_csv(text: str, paths: tuple[str, ...], labels: dict[str, str] | None = None) -> str:
    """Mask columns of CSV text (header row first): a path's last field names the column
    (``revenue`` and ``rows[].revenue`` both mask the ``revenue`` column, since CSV is the
    flattened rows), and so does a header label the route map maps to that field
    (``labels={"商品成本": "goods_cost"}``); every non-empty cell of such a column becomes ``***``.

    Raises:
        ValueError: the text is not CSV with a header row, or a masked field or label shows
            in its first lines other than as a column of the header row (a title row first,
            another delimiter, a label with a unit): masking would miss it, so it fails closed.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return text
    columns = column_names(paths)
    labels = labels or {}
    masked = {i for i, name in enumerate(header) if name.strip() in columns or labels.get(name.strip()) in columns}
    if paths and not masked:
        _refuse_unrecognized_header(text, columns | {label for label, name in labels.items() if name in columns})
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in reader:
        writer.writerow(["***" if i in masked and cell != "" else cell for i, cell in enumerate(row)])
    return out.getvalue()
