"""The data-scope dimensions (ABAC): every resource and every person has values on each."""

from __future__ import annotations

#: Warehouse, sales channel and order type, in the order messages list them.
SCOPE_DIMENSIONS: tuple[str, ...] = ("warehouse", "channel", "order_type")
