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
from authorizer.enforce.mask_kinds import MaskKind, MaskKinds

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


def mask_fields(record: Any, paths: tuple[str, ...], kinds: MaskKinds | None = None) -> None:
    """Mask fields of one record in place: the key stays, the value is masked with its kind
    (:mod:`authorizer.enforce.mask_kinds`; by default ``"***"``, numbers null).

    Args:
        record: a JSON value (objects and lists are walked; scalars are left alone).
        paths: dotted field paths: ``amount`` (a member), ``customer_detail.phone`` (a member of
            a nested object), ``items[].price`` or ``items.price`` (a member of every element
            of a list: lists are walked through either way), ``**.phone`` (a member named
            ``phone`` at any depth).
        kinds: the decision's kinds per path (None: every path is redacted).
    """
    kinds = kinds or _REDACT_ALL
    _mask_planned(record, _plan(paths, kinds), kinds)


_REDACT_ALL = MaskKinds()

#: One mask path ready to apply: the member name when the path is a single top-level member
#: (the usual case, applied without walking), else None; the path's parts; its kind.
_Step = tuple[str | None, tuple[str, ...], MaskKind]


@functools.lru_cache(maxsize=256)
def _parse_paths(paths: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """``("items[].price", "amount")`` as ``(("items", "price"), ("amount",))`` (parsed once per mask)."""
    return tuple(tuple(p.removesuffix("[]") for p in path.split(".")) for path in paths)


def _plan(paths: tuple[str, ...], kinds: MaskKinds) -> tuple[_Step, ...]:
    """The steps masking ``paths`` with their ``kinds``, in the paths' order (made once per
    document, not per row)."""
    return tuple((parts[0] if len(parts) == 1 and parts[0] != "**" else None, parts, kinds.of_path(path))
                 for path, parts in zip(paths, _parse_paths(paths), strict=True))


def _mask_planned(record: Any, plan: tuple[_Step, ...], kinds: MaskKinds) -> None:
    member_ok = isinstance(record, dict)
    for member, parts, kind in plan:
        if member is not None and member_ok:
            if member in record:
                record[member] = kinds.value(kind, record[member])
            continue
        _mask_path(record, parts, kinds, kind)


def _mask_path(node: Any, parts: tuple[str, ...], kinds: MaskKinds, kind: MaskKind) -> None:
    if not parts:
        return
    if isinstance(node, list):
        for element in node:
            _mask_path(element, parts, kinds, kind)
        return
    if not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    if head == "**":
        _mask_path(node, rest, kinds, kind)  # zero levels down
        for value in node.values():
            if isinstance(value, (dict, list)):
                _mask_path(value, parts, kinds, kind)
        return
    if head not in node:
        return
    if rest:
        _mask_path(node[head], rest, kinds, kind)
    else:
        node[head] = kinds.value(kind, node[head])


def column_names(paths: tuple[str, ...]) -> frozenset[str]:
    """The column names a flattened answer (CSV, an HTML table) carries masked ``paths`` under:
    each path's last field (``rows[].revenue``, ``**.revenue`` and ``revenue`` all name ``revenue``)."""
    return frozenset(path.rsplit(".", 1)[-1].removesuffix("[]") for path in paths)


def mask_document(document: Any, paths: tuple[str, ...], rows_key: str | None,
                  kinds: MaskKinds | None = None) -> None:
    """Mask ``paths`` (with their ``kinds``; None: redacted) in a single record, or in every row
    of a list answer when ``rows_key`` is given."""
    if not paths:
        return
    kinds = kinds or _REDACT_ALL
    plan = _plan(paths, kinds)
    if rows_key is not None and isinstance(document, dict) and isinstance(document.get(rows_key), list):
        for row in document[rows_key]:
            _mask_planned(row, plan, kinds)
    else:
        _mask_planned(document, plan, kinds)


_CELL_SPLIT = re.compile(r"[,;\t|]")


def _refuse_unrecognized_header(text: str, names: frozenset[str] | set[str]) -> None:
    """Raise when a masked name starts a cell of the first lines although no header column is it."""
    for line in text.splitlines()[:5]:
        for cell in _CELL_SPLIT.split(line):
            cell = cell.strip().strip('"')
            if any(name and cell.startswith(name) for name in names):
                raise ValueError(f"masked column {cell!r} is not a column of the CSV's header row")


def mask_csv(text: str, paths: tuple[str, ...], labels: dict[str, str] | None = None,
             kinds: MaskKinds | None = None) -> str:
    """Mask columns of CSV text (header row first): a path's last field names the column
    (``revenue`` and ``rows[].revenue`` both mask the ``revenue`` column, since CSV is the
    flattened rows), and so does a header label the route map maps to that field
    (``labels={"商品成本": "goods_cost"}``); every non-empty cell of such a column is masked with
    the column's kind (``kinds``; None: ``***``).

    Raises:
        ValueError: the text is not CSV with a header row, or a masked field or label shows
            in its first lines other than as a column of the header row (a title row first,
            another delimiter, a label with a unit): masking would miss it, so it fails closed.
    """
    kinds = kinds or _REDACT_ALL
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return text
    columns = column_names(paths)
    labels = labels or {}
    masked: dict[int, MaskKind] = {}
    for i, name in enumerate(header):
        column = name.strip() if name.strip() in columns else labels.get(name.strip(), "")
        if column in columns:
            masked[i] = kinds.of_column(paths, column)
    if paths and not masked:
        _refuse_unrecognized_header(text, columns | {label for label, name in labels.items() if name in columns})
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in reader:
        writer.writerow([kinds.cell(masked[i], cell) if i in masked else cell for i, cell in enumerate(row)])
    return out.getvalue()
