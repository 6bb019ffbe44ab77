"""Query parameters a WMS accepts on a route, and filters that would read masked fields back.

A list endpoint that filters or orders by any field lets a caller recover a masked
value without ever seeing it: ``?cost__gt=50``, ``?cost__gt=75``... is a binary search,
and ``?ordering=cost`` sorts by it. The route map may name the parameters a route takes
(``query: {allow: [...]}`` or ``{deny: [...]}``, ``*`` globs); whatever it says, a filter
or an ordering on a field the caller sees masked is refused.

Parameter names follow Django's lookup convention: ``field`` or ``field__lookup``
(``cost__gt``, ``supplier__name__icontains``), or a bracket or dot form
(``filter[cost][gt]``); ordering parameters hold comma-separated field names, ``-`` for
descending. A free-text ``search`` parameter may search masked fields too: deny it on
routes whose masked fields it searches (``query: {deny: [search]}``), or use an allow list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from multidict import MultiMapping

#: Parameters that name sort fields when the route map does not say.
DEFAULT_ORDERING = ("ordering", "order_by", "sort", "sort_by", "o")


@dataclass(frozen=True)
class QuerySpec:
    """What a route's query string may carry.

    Attributes:
        allow: parameter names (or ``*`` globs) accepted; None = any not denied.
        deny: parameter names (or globs) refused.
        ordering: parameters whose values name fields to sort by.
    """

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()
    ordering: tuple[str, ...] = DEFAULT_ORDERING


def refused_parameters(query: MultiMapping[str], spec: QuerySpec, always_allowed: frozenset[str]) -> list[str]:
    """Query parameters the route does not accept (sorted, each once).

    Args:
        query: the decoded query.
        spec: the route's query rules.
        always_allowed: parameters the gateway itself consumes (never refused here).
    """
    out = set()
    for name in query:
        if name in always_allowed:
            continue
        if any(fnmatchcase(name, p) for p in spec.deny):
            out.add(name)
        elif spec.allow is not None and not any(fnmatchcase(name, p) for p in spec.allow):
            out.add(name)
    return sorted(out)


_NAME_PARTS = re.compile(r"__|[^A-Za-z0-9_]+")


def _names_masked(name: str, masked: frozenset[str]) -> bool:
    """True when any part of a lookup names a masked field: Django's ``supplier__phone__icontains``,
    and the bracket and dot forms other filters use (``filter[goods_cost][gt]``,
    ``filter{goods_cost.gt}``); a lookup word such as ``gt`` is never a field that matters."""
    return any(part in masked for part in _NAME_PARTS.split(name) if part)


def masked_lookups(query: MultiMapping[str], spec: QuerySpec, masked: frozenset[str]) -> list[str]:
    """Parameters that filter or order by a masked field (sorted, each once).

    Args:
        query: the decoded query.
        spec: the route's query rules (which parameters are orderings).
        masked: names of the fields the caller sees masked (last field of each mask path).

    Returns:
        ``name`` for a filter (``cost__gt``), ``name=value`` for an ordering (``ordering=-cost``).
    """
    if not masked:
        return []
    out = set()
    for name in query:
        if name in spec.ordering:
            for value in query.getall(name):
                for item in value.split(","):
                    if _names_masked(item.strip().lstrip("-+"), masked):
                        out.add(f"{name}={value}")
        elif _names_masked(name, masked):
            out.add(name)
    return sorted(out)
