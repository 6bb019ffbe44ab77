"""Body fields that say who acts: forced to the caller's value, or refused when they differ.

Legacy WMS APIs often take the acting person from the request body (``creater``,
``operator``) and record it as given: anyone could file a receipt as someone else.
The route map names such fields (``body_identity``); the gateway sets them to the
caller's own value (``force``) or refuses a body that names someone else (``refuse``).
"""

from __future__ import annotations

import json
from typing import Any

from authorizer.authn.identity import Principal
from authorizer.authz.routes import BodyIdentityField
from authorizer.enforce.caller_identity import MissingIdentity, render
from proxy.responses import refusal
from proxy.upstream_identity import no_caller_identity


def enforce_body_identity(fields: tuple[BodyIdentityField, ...], body: dict[str, Any], principal: Principal,
                          tenant: str | None) -> tuple[bytes | None, list[str]]:
    """Apply the route's identity fields to a parsed JSON body (in place).

    Args:
        fields: the route's ``body_identity`` fields.
        body: the parsed request body (a JSON object).
        principal: the caller.
        tenant: the request's tenant (per-tenant attribute values), or None.

    Returns:
        The body's new bytes when a field was set (None when unchanged), and the fields set.

    Raises:
        Refusal: 403 ``identity_field_mismatch`` (a ``refuse`` field names someone else),
            403 ``no_caller_identity`` (the caller lacks the value).
    """
    changed: list[str] = []
    for spec in fields:
        try:
            text = render(spec.value, principal, tenant)
        except MissingIdentity as exc:
            raise no_caller_identity(exc.name) from None
        value: Any = int(text) if spec.integer and text.lstrip("-").isdigit() else text
        if spec.integer and not isinstance(value, int):
            raise no_caller_identity(spec.field)
        sent = body.get(spec.field)
        if spec.mode == "refuse":
            if spec.field in body and str(sent) != text:
                raise refusal("identity_field_mismatch", field=spec.field, value=text)
            continue
        if sent != value:
            body[spec.field] = value
            changed.append(spec.field)
    if not changed:
        return None, []
    return json.dumps(body, ensure_ascii=False).encode("utf-8"), changed
