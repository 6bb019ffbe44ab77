"""Where a browser may be sent back to after login: same-origin relative paths only."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

#: Longest return address kept (longer ones go home).
MAX_RETURN_TO = 2048


def safe_return_to(value: str | None) -> str:
    """``value`` if it is a same-origin relative path (``/orders?page=2``), else ``/``.

    Refused (open-redirect tricks, OWASP "Unvalidated Redirects"): absolute URLs and
    anything with a scheme or host, protocol-relative ``//host``, ``/\\host`` and any
    backslash, control characters (tabs and newlines that browsers strip), and all of
    these again after percent-decoding up to three times (``/%2F%2Fhost``, ``%09``); the
    gateway's own login endpoints (no loops).

    Args:
        value: the requested return address (from a query parameter), possibly None.

    Returns:
        A path that starts with a single ``/``.
    """
    if not value or len(value) > MAX_RETURN_TO:
        return "/"
    candidates = [value]
    for _ in range(3):
        candidates.append(unquote(candidates[-1]))
    for text in candidates:
        if any(ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in text):
            return "/"
        if not text.startswith("/") or text.startswith("//"):
            return "/"
        parts = urlsplit(text)
        if parts.scheme or parts.netloc:
            return "/"
        if parts.path.startswith("/_gateway/auth/"):
            return "/"
    return value
