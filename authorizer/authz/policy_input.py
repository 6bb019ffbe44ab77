"""The ``input`` document the PDP decides on (schema: rego/base/schemas/input.json)."""

from __future__ import annotations

import math
from typing import Any

from authorizer.authn.identity import Principal
from authorizer.authz.attributes import Resource
from authorizer.authz.routes import Route


def _finite(value: Any) -> bool:
    """A JSON number the policy can compare (not a bool, NaN or infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def build_policy_input(principal: Principal, route: Route, body: Any, resource: Resource, method: str,
                       client_ip: str, time_ms: int) -> dict[str, Any]:
    """Assemble ``input`` for one request.

    Args:
        principal: who asks.
        route: the matched route (module, verb, extra permissions by body field).
        body: the parsed JSON body, or None.
        resource: the resolved resource (kind, id, attributes, found).
        method: the HTTP method.
        client_ip: the real client address.
        time_ms: request time, milliseconds since the epoch (UTC).

    Returns:
        ``{"subject", "action", "resource", "request"}``; ``action.changes`` (the state the
        body asks for) beside ``resource.state`` (the current one) on state-bearing writes;
        ``action.quantities`` (numbers of the body the route map names) on writes judged by
        magnitude.
    """
    also = [{"module": m, "verb": v} for fld, (m, v) in route.also_when_body_has.items()
            if isinstance(body, dict) and fld in body]
    also += resource.also_at  # permissions over other places (a transfer's target warehouse)
    action: dict[str, Any] = {"module": route.module, "verb": route.verb, "also": also}
    if resource.state is not None and isinstance(body, dict):  # the state the write asks for
        action["changes"] = {name: None if body[name] is None else str(body[name])
                             for name in resource.state if name in body}
    if route.quantities and isinstance(body, dict):  # what a magnitude rule judges (a number, else left out)
        action["quantities"] = {name: body[fld] for name, fld in route.quantities.items() if _finite(body.get(fld))}
    return {
        "subject": principal.policy_subject(),
        "action": action,
        "resource": resource.policy_input(),
        "request": {"method": method, "route": route.template, "client_ip": client_ip, "time_ms": time_ms},
    }
