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

ALLOWED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_RAW_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\#]")


class HygieneError(Exception):
    """A request the gateway will not interpret. ``status`` is 400 (or 405 for methods)."""

    def __init__(self, code: str, zh: str, en: str, status: int = 400) -> None:
        super().__init__(en)
        self.code, self.zh, self.en, self.status = code, zh, en, status


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


def _refuse(code: str, zh: str, en: str) -> HygieneError:
    return HygieneError(code, zh, en)


def _decode_segment(raw: str) -> str:
    if raw in (".", ".."):
        raise _refuse("dot_segment", "路径含有 . 或 .. 段", "the path has a '.' or '..' segment")
    decoded_bytes = unquote_to_bytes(raw)
    try:
        decoded = decoded_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("bad_encoding", "路径不是有效的 UTF-8", "the path is not valid UTF-8") from None
    if decoded in (".", ".."):
        raise _refuse("dot_segment", "路径含有编码的 . 或 .. 段", "the path has an encoded '.' or '..' segment")
    if "/" in decoded or "\\" in decoded:
        raise _refuse("encoded_slash", "路径含有编码的斜杠", "the path has an encoded slash or backslash")
    if "%" in decoded:
        raise _refuse("double_encoding", "路径含有双重编码", "the path is percent-encoded twice")
    if ";" in decoded:
        raise _refuse("path_parameters", "路径含有 ; 参数", "the path has ';' parameters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        raise _refuse("control_character", "路径含有控制字符", "the path has a control character")
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
        raise HygieneError("method_not_allowed", f"不支持的方法 {method}", f"method {method} is not allowed", 405)
    if not raw_target.startswith("/"):
        raise _refuse("bad_request_target", "请求目标必须是以 / 开头的路径",
                      "the request target must be a path starting with /")
    if not raw_target.isascii() or _RAW_FORBIDDEN.search(raw_target):
        raise _refuse("bad_character", "请求目标含有不允许的字符", "the request target has a forbidden character")
    raw_path, _, raw_query = raw_target.partition("?")
    if _BAD_PERCENT.search(raw_target):
        raise _refuse("bad_percent_encoding", "百分号编码格式错误", "malformed percent-encoding")
    if ";" in raw_path:
        raise _refuse("path_parameters", "路径含有 ; 参数", "the path has ';' parameters")
    if ";" in raw_query:  # older Django, Rack and others split parameters on ';' too: one reading only
        raise _refuse("query_semicolon", "查询字符串含有 ;(部分 WMS 把它当作参数分隔符)",
                      "the query string has a ';' (some WMSs read it as a parameter separator)")
    segments = raw_path.split("/")[1:]
    # One trailing "/" is an empty last segment the route map matches exactly
    # (``/goods/`` is not ``/goods``); any other empty segment ("//") is refused.
    if any(s == "" for s in segments[:-1]):
        raise _refuse("empty_segment", "路径含有空段(//)", "the path has an empty segment ('//')")
    decoded = [_decode_segment(s) if s else "" for s in segments]
    try:
        query = URL.build(path="/", query_string=raw_query, encoded=True).query
        for name, value in query.items():
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name + value):
                raise _refuse("control_character", "查询参数含有控制字符", "a query parameter has a control character")
    except ValueError:
        raise _refuse("bad_query", "查询字符串无法解析", "the query string cannot be parsed") from None
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
        raise _refuse("duplicate_authorization", "请求含有多个 Authorization 头", "more than one Authorization header")
    if len(headers.getall("Host", [])) > 1:
        raise _refuse("duplicate_host", "请求含有多个 Host 头", "more than one Host header")
    for name in refused:
        if name in headers:
            raise _refuse("method_override_refused", f"不接受 {name} 头", f"the {name} header is not accepted")
    encodings = {e.strip().lower() for v in headers.getall("Content-Encoding", []) for e in v.split(",")}
    if encodings - {"", "identity"}:
        raise HygieneError("unsupported_content_encoding", "不接受压缩的请求体(Content-Encoding)",
                           "compressed request bodies (Content-Encoding) are not accepted", 415)
