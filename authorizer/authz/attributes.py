"""Resource attributes: where the resource a request touches lies in the data scope.

Attributes come from the request itself (path, query, JSON body) or from a lookup
on the WMS made by the gateway before it decides, cached briefly. The request is
never forwarded before the decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from cachetools import TTLCache
from multidict import MultiMapping

from authorizer.authz.routes import TEMPLATE_PART, Lookup, Route, Source

_NOT_FOUND: dict[str, list[str]] = {}


class ResolutionError(Exception):
    """Base of attribute resolution failures."""


class BadResourceInput(ResolutionError):
    """The request lacks or malforms a value the route map needs (answered with 400)."""


class LookupFailed(ResolutionError):
    """The WMS did not answer an attribute lookup usably (answered with 502)."""


@dataclass(frozen=True)
class RequestParts:
    """The parts of a request that sources read.

    Attributes:
        params: path parameters from the route match.
        query: the (decoded) query parameters.
        body: the parsed JSON body, or None when the route needs none.
    """

    params: Mapping[str, str]
    query: MultiMapping[str]
    body: Any = None


@dataclass
class Resource:
    """What the policy sees as ``input.resource``.

    Attributes:
        kind: item, list, bulk or aggregate (from the route).
        id: resource id text, e.g. ``SO2024111100012`` or ``HF/A01-01/SKU00001``.
        attributes: scope dimension -> values (several for bulk; ``*`` = all for aggregates).
        found: False when a lookup said the resource does not exist.
        state: for a write to one resource whose lookup names state fields, their current
            values (read fresh from the WMS); None otherwise.
        also_at: the route's extra permissions over other places, with the places the
            request names (``{"module", "verb", "attributes"}``, ``input.action.also`` entries).
    """

    kind: str
    id: str | None = None
    attributes: dict[str, list[str]] = field(default_factory=dict)
    found: bool = True
    state: dict[str, str | None] | None = None
    also_at: list[dict[str, Any]] = field(default_factory=list)

    def policy_input(self) -> dict[str, Any]:
        """The ``input.resource`` document (``state`` only when known)."""
        doc: dict[str, Any] = {"kind": self.kind, "id": self.id, "attributes": self.attributes, "found": self.found}
        if self.state is not None:
            doc["state"] = self.state
        return doc


def source_values(source: Source, parts: RequestParts) -> list[str]:
    """All values of ``source`` in the request, as strings.

    Returns:
        An empty list when the value is absent. Body lists give one value per element.

    Raises:
        BadResourceInput: a body field is an object or holds non-scalar elements.
    """
    if source.kind == "const":
        return [source.name]
    if source.kind == "tenant":
        return []  # the resolver puts the tenant itself in place
    if source.kind == "path":
        value = parts.params.get(source.name)
        return [value] if value is not None else []
    if source.kind == "query":
        return list(parts.query.getall(source.name, []))
    node: Any = parts.body
    for key in source.name.split("."):
        if not isinstance(node, dict):
            return []
        node = node.get(key)
    if node is None:
        return []
    items = node if isinstance(node, list) else [node]
    if not all(isinstance(i, (str, int, float)) and not isinstance(i, bool) for i in items):
        raise BadResourceInput(f"body field {source.name!r} must be a string or a list of strings")
    return [str(i) for i in items]


def resource_id(route: Route, parts: RequestParts) -> str | None:
    """Render the route's resource id template (several values joined by commas)."""
    if route.resource_id is None:
        return None

    def render(m: Any) -> str:
        kind, _, name = m.group(1).partition(".")
        return ",".join(source_values(Source(kind, name), parts))

    return TEMPLATE_PART.sub(render, route.resource_id)


def _attributes(lookup: Lookup, record: Mapping[str, Any]) -> dict[str, list[str]]:
    """The scope attributes a looked-up record carries (an empty value is none)."""
    return {dim: [str(record[fld])] if record.get(fld) not in (None, "") else []
            for dim, fld in lookup.attributes.items()}


class AttributeResolver:
    """Resolves a matched request's resource attributes.

    Args:
        session: the app's shared aiohttp session (used for lookups).
        upstream_url: base URL of the WMS.
        lookup_headers: headers sent with every lookup (the gateway's own identity).
        cache_seconds: how long a lookup answer is reused, seconds.
        timeout_seconds: timeout of one lookup, seconds.
        max_concurrency: lookups in flight at once for one bulk request.
        max_keys: most resource ids one bulk request may name (checked before any lookup).
    """

    def __init__(self, session: aiohttp.ClientSession, upstream_url: str, lookup_headers: Mapping[str, str],
                 cache_seconds: float, timeout_seconds: float = 10.0, max_concurrency: int = 16,
                 max_keys: int = 200) -> None:
        self._max_keys = max_keys
        self._session = session
        self._upstream = upstream_url
        self._headers = dict(lookup_headers)
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._cache: TTLCache[str, dict[str, list[str]]] | None = (
            TTLCache(maxsize=50_000, ttl=cache_seconds) if cache_seconds > 0 else None)
        self._max_concurrency = max_concurrency
        self._in_flight: dict[str, asyncio.Future[dict[str, list[str]]]] = {}

    async def resolve(self, route: Route, parts: RequestParts, tenant: tuple[str, str] | None = None,
                      credentials: Mapping[str, str] | None = None) -> Resource:
        """Build the :class:`Resource` for ``route`` from ``parts`` and lookups.

        Args:
            route: the matched route.
            parts: the request's path parameters, query and body.
            tenant: ``(dimension, value)`` when the WMS has one tenant per warehouse: the
                resource lies in that tenant (lists included) and lookups run in it.
            credentials: the WMS credential headers of that tenant, sent on lookups.

        Raises:
            BadResourceInput: a lookup key is missing from the request.
            LookupFailed: the WMS failed a lookup.
        """
        resource = Resource(kind=route.kind, id=resource_id(route, parts))
        if tenant is not None:
            resource.attributes[tenant[0]] = [tenant[1]]
        if route.kind == "list":
            return resource
        resource.also_at = [{"module": extra.module, "verb": extra.verb,
                             "attributes": {dim: source_values(src, parts) for dim, src in extra.attributes.items()}}
                            for extra in route.also_at]
        for dim, source in route.attributes.items():
            if tenant is not None and dim == tenant[0]:
                continue  # the tenant was chosen from these values already
            values = source_values(source, parts)
            if not values and route.kind == "aggregate":
                values = ["*"]
            resource.attributes[dim] = values
        if route.lookup is not None:
            lookup, key_source = route.lookup
            keys = source_values(key_source, parts)
            if not keys:
                raise BadResourceInput(f"{key_source} is required")
            if len(keys) > self._max_keys:
                raise BadResourceInput(f"{key_source} names {len(keys)} resources; "
                                       f"at most {self._max_keys} per request")
            if lookup.state and route.method not in ("GET", "HEAD") and len(keys) == 1:
                # a write's policy may depend on the current state: read it now, never from the cache
                record = await self._record(lookup, keys[0], tenant[1] if tenant else "", credentials or {})
                results = [_NOT_FOUND if record is None else _attributes(lookup, record)]
                if record is not None:
                    resource.state = {name: None if record.get(fld) in (None, "") else str(record[fld])
                                      for name, fld in lookup.state.items()}
            else:
                results = await self._lookup_all(lookup, keys, tenant[1] if tenant else "", credentials or {})
            if any(r is _NOT_FOUND for r in results):
                resource.found = False
            merged: dict[str, list[str]] = {dim: [] for dim in lookup.attributes}
            for result in results:
                for dim, values in result.items():
                    merged[dim].extend(v for v in values if v not in merged[dim])
            if tenant is not None:  # a tenant's rows carry no warehouse: the tenant is where they are
                merged.pop(tenant[0], None)
            resource.attributes.update(merged)
        return resource

    async def _lookup_all(self, lookup: Lookup, keys: list[str], tenant: str,
                          credentials: Mapping[str, str]) -> list[dict[str, list[str]]]:
        if len(keys) == 1:
            return [await self._lookup(lookup, keys[0], tenant, credentials)]
        semaphore = asyncio.Semaphore(self._max_concurrency)

        async def one(key: str) -> dict[str, list[str]]:
            async with semaphore:
                return await self._lookup(lookup, key, tenant, credentials)

        return list(await asyncio.gather(*(one(k) for k in dict.fromkeys(keys))))

    async def _lookup(self, lookup: Lookup, key: str, tenant: str,
                      credentials: Mapping[str, str]) -> dict[str, list[str]]:
        """The attributes of ``key``: from the cache, else from the WMS. Concurrent misses on one
        key share one WMS request (when a popular record's entry expires under load, the WMS gets
        one lookup, not one per waiting request); a caller that goes away does not cancel it for
        the others."""
        cache_key = f"{tenant}\0{lookup.path.replace('{id}', quote(key, safe=''))}"  # one id in two tenants
        if self._cache is None:
            return await self._fetch(lookup, key, tenant, credentials)
        if (hit := self._cache.get(cache_key)) is not None:
            return hit
        task = self._in_flight.get(cache_key)
        if task is None:
            task = asyncio.ensure_future(self._fetch(lookup, key, tenant, credentials, cache_key))
            self._in_flight[cache_key] = task
            task.add_done_callback(lambda done: self._landed(cache_key, done))
        return await asyncio.shield(task)

    def _landed(self, cache_key: str, task: asyncio.Future[dict[str, list[str]]]) -> None:
        if self._in_flight.get(cache_key) is task:
            del self._in_flight[cache_key]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone away

    async def _fetch(self, lookup: Lookup, key: str, tenant: str, credentials: Mapping[str, str],
                     cache_key: str | None = None) -> dict[str, list[str]]:
        record = await self._record(lookup, key, tenant, credentials)
        result = _NOT_FOUND if record is None else _attributes(lookup, record)
        if self._cache is not None and cache_key is not None:
            self._cache[cache_key] = result
        return result

    async def _record(self, lookup: Lookup, key: str, tenant: str,
                      credentials: Mapping[str, str]) -> dict[str, Any] | None:
        """The WMS's record of ``key``, or None when it has none (404, or a key that names no record).

        Raises:
            LookupFailed: the WMS failed, timed out or answered something other than a JSON object.
        """
        if not key or key in (".", ".."):
            return None
        path = lookup.path.replace("{id}", quote(key, safe=""))
        try:
            async with self._session.get(self._upstream + path, headers={**self._headers, **credentials},
                                         timeout=self._timeout, allow_redirects=False) as resp:
                if resp.status == 404:
                    return None
                if resp.status != 200:
                    raise LookupFailed(f"lookup {lookup.name} {key!r}: WMS answered {resp.status}")
                record = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise LookupFailed(f"lookup {lookup.name} {key!r}: {exc!r}") from exc
        if not isinstance(record, dict):
            raise LookupFailed(f"lookup {lookup.name} {key!r}: not a JSON object")
        return record
