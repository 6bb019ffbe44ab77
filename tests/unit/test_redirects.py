"""The return address after login: same-origin relative paths only (issue "Browser SSO", case 6)."""

from __future__ import annotations

import pytest

from proxy.redirects import safe_return_to


@pytest.mark.parametrize("value", [
    "/", "/ui/orders", "/ui/orders?warehouse=HF&page=2", "/api/orders/SO1#top", "/ui/%E8%AE%A2%E5%8D%95",
])
def test_same_origin_paths_are_kept(value: str) -> None:
    assert safe_return_to(value) == value


@pytest.mark.parametrize("value", [
    None, "", "https://evil.example/", "http:evil.example", "//evil.example", "///evil.example",
    "/\\evil.example", "\\\\evil.example", "/%2F/evil.example", "/%2f%2fevil.example", "%2F%2Fevil.example",
    "/%5Cevil.example", "/\t/evil.example", "/%09/evil.example", "/%0d%0aLocation:%20http://evil",
    "/%252F%252Fevil.example", "javascript:alert(1)", " //evil.example", "evil.example/path",
    "/_gateway/auth/login?return_to=//evil", "/" + "a" * 3000,
])
def test_open_redirect_tricks_land_on_the_home_page(value: str | None) -> None:
    assert safe_return_to(value) == "/"
