"""Request hygiene: refuse request lines and headers that proxies and servers may read differently.

Checked on the raw request target before routing, so the route map sees exactly
one interpretation of the path: percent-decoding is done once, per segment, and a
request is refused (400, never forwarded) when it has an encoded slash or
backslash, a dot segment (plain or encoded), an empty segment (``//``; one
trailing ``/``, as every Django/DRF URL has, is a path of its own and matched
exactly), ``;`` path parameters, double encoding, NUL or other control characters (in the path and in
query names and values), a ``;`` in the query (some servers split parameters on it),
non-ASCII bytes, or a target that is not in origin form (RFC 9112 section 3.2.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from multidict import CIMultiDictProxy, MultiDictProxy
from yarl import URL

from authorizer.messages import CatalogError

ALLOWED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_RAW_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\#]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class HygieneError(CatalogError):
    """A request the gateway will not interpret: a :data:`~authorizer.messages.CATALOG` entry
    (``status`` 400; 405 for methods, 415 for compressed bodies)."""


@dataclass(frozen=True)
class CleanTarget:
    """A request target that passed hygiene.

    Attributes:
        raw_path: the path exactly as received (forwarded unchanged).
        segments: the decoded path segments (what the route map matches).
        raw_query: the query string exactly as received, without ``?``.
        query: the decoded query parameters.
    """

    raw_path: str
    segments: list[str]
    raw_query: str
    query: MultiDictProxy[str]


def _decode_segment(raw: str) -> str:
    if raw in (".", ".."):
        raise HygieneError("dot_segment")
    decoded_bytes = unquote_to_bytes(raw)
    try:
        decoded = decoded_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise HygieneError("bad_encoding") from None
    if decoded in (".", ".."):
        raise HygieneError("encoded_dot_segment")
    if "/" in decoded or "\\" in decoded:
        raise HygieneError("encoded_slash")
    if "%" in decoded:
        raise HygieneError("double_encoding")
    if ";" in decoded:
        raise HygieneError("path_parameters")
    if _CONTROL.search(decoded):
        raise HygieneError("control_character")
    return decoded


def check_target(method: str, raw_target: str) -> CleanTarget:
    """Validate the method and raw request target.

    Args:
        method: the request method.
        raw_target: the request target as received (path and query, not decoded).

    Returns:
        The clean target.

    Raises:
        HygieneError: the method or target is refused.
    """
    if method not in ALLOWED_METHODS:
        raise HygieneError("method_refused", method=method)
    if not raw_target.startswith("/"):
        raise HygieneError("bad_request_target")
    if not raw_target.isascii() or _RAW_FORBIDDEN.search(raw_target):
        raise HygieneError("bad_character")
    raw_path, _, raw_query = raw_target.partition("?")
    if _BAD_PERCENT.search(raw_target):
        raise HygieneError("bad_percent_encoding")
    if ";" in raw_path:
        raise HygieneError("path_parameters")
    if ";" in raw_query:  # older Django, Rack and others split parameters on ';' too: one reading only
        raise HygieneError("query_semicolon")
    segments = raw_path.split("/")[1:]
    # One trailing "/" is an empty last segment the route map matches exactly
    # (``/goods/`` is not ``/goods``); any other empty segment ("//") is refused.
    if any(s == "" for s in segments[:-1]):
        raise HygieneError("empty_segment")
    decoded = [_decode_segment(s) if s else "" for s in segments]
    try:
        query = URL.build(path="/", query_string=raw_query, encoded=True).query
        for name, value in query.items():
            if _CONTROL.search(name) or _CONTROL.search(value):
                raise HygieneError("query_control_character")
    except ValueError:
        raise HygieneError("bad_query") from None
    return CleanTarget(raw_path, decoded, raw_query, query)


def check_headers(headers: CIMultiDictProxy[str], refused: tuple[str, ...]) -> None:
    """Refuse ambiguous or dangerous headers.

    Args:
        headers: the request headers.
        refused: header names whose mere presence is refused (method overrides).

    Raises:
        HygieneError: more than one ``Authorization`` or ``Host`` header, a refused header,
            or a ``Content-Encoding`` other than identity (415: the gateway would decide
            on decoded bytes the WMS never sees).
    """
    if len(headers.getall("Authorization", [])) > 1:
        raise HygieneError("duplicate_authorization")
    if len(headers.getall("Host", [])) > 1:
        raise HygieneError("duplicate_host")
    for name in refused:
        if name in headers:
            raise HygieneError("method_override_refused", name=name)
    encodings = {e.strip().lower() for v in headers.getall("Content-Encoding", []) for e in v.split(",")}
    if encodings - {"", "identity"}:
        raise HygieneError("unsupported_content_encoding")
