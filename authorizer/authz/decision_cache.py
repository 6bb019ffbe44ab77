"""A cache of in-process decisions that cannot change with the clock.

A decision is cached under the bundle revision that made it and its whole input except
``request.time_ms`` and ``request.client_ip``, and only when the policy read neither for it.
Why that holds (``rego/base/wms/authz``; deployment layers add data and tests, never rules):

- ``input.request.client_ip`` is read by no rule (it is in the input for the audit trail);
- ``input.request.time_ms`` is read by exactly two rules: ``now_seconds`` (temporary grant
  windows: ``effective_roles`` reads it only for a role that came with a grant, so never when
  ``subject.grants`` is empty) and ``step_up_satisfied`` (the age of the login: evaluated only
  when ``step_up_requirement`` is defined, i.e. the request is a high-risk operation, which the
  decision names in ``high_risk``, or an approval, ``action.verb == "approve"``).

So a decision with no grants in its input, no high-risk operation, no step-up and not an
approval is the same at any time and from any address. ``tests/unit/test_decision_cache.py``
checks it on every matrix input (each cacheable decision re-evaluated at other times and
addresses); revocations, the other clock-bound fact, are checked by the PEP on every request
before the PDP is asked. A new bundle revision is a new key, so an edit takes effect at once.

The proof holds for the rules it names. Each bundle's rules are read when it is loaded
(:func:`proof_holds`): a line that may read the time, the address or the whole input and is not
one of :data:`PROVEN_READERS` (a new office-hours rule, an address allow-list) turns the cache
off for that bundle until this proof is extended.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from authorizer.authz.pdp import Decision

#: The rule lines the proof is about: ``(file name, line)`` of every line of the rules that reads
#: the request's time (or what is derived from it), its address, or its method and route (in the key).
PROVEN_READERS = frozenset({
    ("authz.rego", "now_seconds >= grant.valid_from"),
    ("authz.rego", "now_seconds < grant.valid_until"),
    ("authz.rego", "now_seconds := input.request.time_ms / 1000"),
    ("high_risk.rego", "step_up_satisfied if {"),
    ("high_risk.rego", "age_seconds := (input.request.time_ms / 1000) - input.subject.auth_time"),
    ("high_risk.rego", "not step_up_satisfied"),
    ("obligations.rego",
     'mask_applies(rule) if concat(" ", [input.request.method, input.request.route]) in rule.routes'),
})
#: What may read the time or the address: their names, what is derived from them, clock and
#: network built-ins, ``input.request`` and the input as a whole (``walk(input)``, ``input[k]``).
_MAY_READ_THE_CLOCK = re.compile(
    r"time_ms|client_ip|now_seconds|step_up_satisfied|input\.request|\btime\.|\bnet\.|\binput\b(?![.])")


def clock_readers(sources: Mapping[str, str]) -> set[tuple[str, str]]:
    """``(file name, line)`` of every line of the rules in ``sources`` (path -> Rego text; tests
    left out) that may read the time or the client's address (comments ignored)."""
    found = set()
    for path, text in sources.items():
        name = path.rsplit("/", 1)[-1]
        if name.endswith("_test.rego"):
            continue
        for line in text.splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith("#") and _MAY_READ_THE_CLOCK.search(stripped):
                found.add((name, stripped))
    return found


def proof_holds(sources: Mapping[str, str]) -> bool:
    """True when no rule of ``sources`` reads the time or the address beyond :data:`PROVEN_READERS`."""
    return clock_readers(sources) <= PROVEN_READERS


def clock_free(policy_input: dict[str, Any], decision: Decision, high_risk: Any = None) -> bool:
    """True when ``decision`` cannot depend on ``request.time_ms`` or ``request.client_ip``
    (see the module's docstring for the proof).

    Args:
        policy_input: the input it was made on.
        decision: the parsed decision.
        high_risk: the decision document's ``high_risk`` as the policy wrote it (an operation id
            the parser drops, such as ``""``, still names an operation with a step-up).
    """
    subject, action = policy_input.get("subject") or {}, policy_input.get("action") or {}
    return (not subject.get("grants") and action.get("verb") != "approve" and "approval" not in policy_input
            and decision.high_risk is None and high_risk is None and decision.obligations.step_up is None)


def cache_key(revision: str, policy_input: dict[str, Any]) -> bytes:
    """The input without its time and client address, with the revision (JSON, keys sorted)."""
    request = {k: v for k, v in (policy_input.get("request") or {}).items() if k not in ("time_ms", "client_ip")}
    rest = {k: v for k, v in policy_input.items() if k != "request"}
    try:
        return orjson.dumps([revision, rest, request], option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits: the standard library's encoder
        return json.dumps([revision, rest, request], sort_keys=True, separators=(",", ":")).encode("utf-8")


class DecisionCache:
    """A bounded LRU map from :func:`cache_key` to clock-free decisions.

    Args:
        size: most entries kept (least recently used dropped first); 0 keeps nothing.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, Decision] = OrderedDict()
        #: Lookups answered from the cache, and lookups that were not.
        self.hits = 0
        self.misses = 0

    def get(self, key: bytes) -> Decision | None:
        """The cached decision for ``key``, or None (counted)."""
        decision = self._entries.get(key)
        if decision is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return decision

    def put(self, key: bytes, policy_input: dict[str, Any], decision: Decision, high_risk: Any = None) -> None:
        """Keep ``decision`` when it is clock-free (:func:`clock_free`); otherwise do nothing."""
        if self._size <= 0 or not clock_free(policy_input, decision, high_risk):
            return
        self._entries[key] = decision
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
