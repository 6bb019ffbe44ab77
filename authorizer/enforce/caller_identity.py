"""The caller's identity as a WMS wants it: templates over the verified token.

Templates take ``{username}``, ``{user_id}``, ``{roles}`` (comma separated) and
``{attr:NAME}``: the value of the verified token claim ``NAME`` (a Keycloak user
attribute mapped into the token). An attribute may hold one value per tenant, as
``["HF:12", "SH:7"]`` (Keycloak's multi-valued attribute) or ``{"HF": 12, "SH": 7}``:
the request's tenant picks one (the caller's numeric staff id in that warehouse's WMS
tenant). Used for the identity headers the WMS receives and for body fields that name
who acts (``creater``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from authorizer.authn.identity import Principal


class MissingIdentity(Exception):
    """The caller has no value for an ``{attr:NAME}`` (for the request's tenant); ``name`` says which."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


_PLACEHOLDER = re.compile(r"\{(username|user_id|roles|attr:[A-Za-z0-9_.\-]+)\}")
_PER_TENANT = re.compile(r"^([^:=]+)[:=](.+)$")


def template_problems(template: str) -> list[str]:
    """Placeholders of ``template`` that are not known (``{nme}``), for config validation."""
    return [m for m in re.findall(r"\{([^{}]*)\}", template) if not _PLACEHOLDER.fullmatch("{" + m + "}")]


def attribute_names(templates: list[str]) -> set[str]:
    """Names of the token claims that ``{attr:NAME}`` placeholders read."""
    return {m[5:] for t in templates for m in re.findall(r"\{(attr:[^{}]+)\}", t)}


def caller_value(value: Any, tenant: str | None) -> str | None:
    """One value of a caller attribute for ``tenant``.

    With a tenant (a WMS with one tenant per warehouse) only per-tenant values count: a
    ``TENANT:value`` (or ``TENANT=value``) text or list item, ``*:value`` for every tenant,
    or an object ``{tenant: value}``. A plain value would be used in every tenant, where
    it may be someone else's id, so it counts only without tenants.

    Args:
        value: the claim's value: a scalar, a list or an object.
        tenant: the request's tenant (warehouse), or None.

    Returns:
        The value as text, or None when there is none for ``tenant``.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, dict):
        picked = value.get(tenant) if tenant is not None else None
        return _plain(picked)
    items = value if isinstance(value, list) else [value]
    pairs = [m for v in items if isinstance(v, str) and (m := _PER_TENANT.match(v))]
    if tenant is not None:
        found = [m.group(2) for m in pairs if m.group(1) == tenant] or [m.group(2) for m in pairs if m.group(1) == "*"]
        return found[0] if len(found) == 1 else None
    plain = [v for v in items if not (isinstance(v, str) and _PER_TENANT.match(v))]
    return _plain(plain[0]) if len(plain) == 1 and not pairs else None


def _plain(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    return str(value) if str(value) else None


def render(template: str, principal: Principal, tenant: str | None) -> str:
    """Fill a header template for ``principal`` in ``tenant``.

    Raises:
        MissingIdentity: an ``{attr:NAME}`` has no value (for this tenant).
    """

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "username":
            return principal.username
        if key == "user_id":
            return principal.user_id
        if key == "roles":
            return ",".join(principal.roles)
        name = key[5:]
        value = caller_value(principal.attributes.get(name), tenant)
        if value is None or any(c in value for c in "\r\n\0"):
            raise MissingIdentity(name)
        return value

    return _PLACEHOLDER.sub(fill, template)
