"""Tenant per warehouse: a WMS where one credential is one warehouse and rows carry no warehouse.

Many multi-tenant WMSs (GreaterWMS and other Django/DRF systems) scope every request
by the credential it carries: the ``token`` of warehouse HF sees only HF's goods, and
the goods rows have no warehouse field. The gateway then has to choose the tenant for
each request itself, in this order:

1. the gateway's own query parameter (``?warehouse=SH``), consumed by the gateway and
   never forwarded (the WMS would not know it);
2. the route's own attribute for the tenant dimension (``path.warehouse``...);
3. the caller's data scope, when it holds exactly one value there (a keeper of HF).

A caller with several warehouses (or ``*``) who names none gets 400 ``tenant_required``.
The chosen tenant is the resource's attribute on that dimension (so the policy checks
the caller's scope covers it, lists included) and picks the WMS credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from multidict import MultiMapping

from authorizer.authz.scope import SCOPE_DIMENSIONS
from authorizer.messages import TEXTS, CatalogError

if TYPE_CHECKING:
    from authorizer.authn.identity import Principal

ALL = "*"


@dataclass(frozen=True)
class TenantSettings:
    """``upstream.tenant``: the dimension one WMS credential stands for.

    Attributes:
        dimension: the scope dimension (``warehouse``).
        query_param: the gateway's own query parameter naming the tenant (never forwarded),
            or None when clients cannot name one.
    """

    dimension: str = "warehouse"
    query_param: str | None = "warehouse"

    def __post_init__(self) -> None:
        if self.dimension not in SCOPE_DIMENSIONS:
            raise ValueError(f"upstream.tenant.dimension {self.dimension!r} is not one of "
                             f"{', '.join(SCOPE_DIMENSIONS)}")


class TenantError(CatalogError):
    """The tenant of a request cannot be chosen (400), or the caller may not be in it (403): a
    :data:`~authorizer.messages.CATALOG` entry (``tenant_several``, ``tenant_all``,
    ``tenant_out_of_scope``, ``tenant_required``).

    Attributes:
        value: the tenant the request named, when it was refused for being out of scope.
    """

    def __init__(self, key: str, dim: str, value: str | None = None, **params: str) -> None:
        super().__init__(key, dim=dim, dim_zh=_zh(dim), value=value or "", **params)
        self.value = value


def choose_tenant(settings: TenantSettings, query: MultiMapping[str], route_values: list[str],
                  principal: Principal) -> str:
    """The tenant a request runs under.

    Args:
        settings: the tenant dimension and the gateway's query parameter.
        query: the request's decoded query.
        route_values: values the route map's own sources give for the dimension (may be empty).
        principal: the caller (their scope is the last resort).

    Returns:
        One tenant value (a warehouse code).

    Raises:
        TenantError: none can be chosen, the request names several or contradicting ones, or
            one the caller's scope does not cover (403: whatever the route's module, whatever
            the enforcement mode, since the tenant's credential opens all of it).
    """
    dim, param = settings.dimension, settings.query_param
    named = sorted(set(query.getall(param, []))) if param else []
    given = sorted(set(route_values))
    if len(named) > 1 or len(given) > 1 or (named and given and named != given):
        raise TenantError("tenant_several", dim)
    if named or given:
        value = (named or given)[0]
        if value == ALL or not value:
            raise TenantError("tenant_all", dim)
        scope = principal.scope.get(dim, ())
        if value not in scope and ALL not in scope:  # its credential opens the whole tenant: never for outsiders
            raise TenantError("tenant_out_of_scope", dim, value)
        return value
    scope = tuple(v for v in principal.scope.get(dim, ()) if v)
    if len(scope) == 1 and scope[0] != ALL:
        return scope[0]
    hint = f"?{param}=..." if param else ""
    raise TenantError("tenant_required", dim, hint=hint, with_hint=f" with {hint}" if hint else "")


def _zh(dim: str) -> str:
    text = TEXTS.get(f"dimension_{dim}")
    return text.zh if text is not None else dim
