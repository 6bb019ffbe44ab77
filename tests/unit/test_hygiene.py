"""Request-line hygiene: one interpretation of every path, or a 400."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.hygiene import HygieneError, check_headers, check_target


@pytest.mark.parametrize("target, code", [
    ("/api/picking/tasks/../../reports/finance", "dot_segment"),
    ("/api/picking/tasks/./x", "dot_segment"),
    ("/api/picking/tasks/%2e%2e/%2e%2e/reports/finance", "dot_segment"),
    ("/api/picking/tasks/%2E%2E/reports", "dot_segment"),
    ("/api/picking/.%2e/reports", "dot_segment"),
    ("/api/inventory/HF%2FA01-01/SKU00001", "encoded_slash"),
    ("/api/inventory/HF%2fA01-01/SKU00001", "encoded_slash"),
    ("/api/orders/x%5C..%5Cy", "encoded_slash"),
    ("/api/orders\\..\\reports", "bad_character"),
    ("/api/reports/finance;jsessionid=1", "path_parameters"),
    ("/api/reports/finance%3Bx=1", "path_parameters"),
    ("//api/reports/finance", "empty_segment"),
    ("/api//reports/finance", "empty_segment"),
    ("/api/orders//", "empty_segment"),
    ("/api//", "empty_segment"),
    ("/api/orders/%252e%252e", "double_encoding"),
    ("/api/orders/SO1%00", "control_character"),
    ("/api/orders/SO1%0d%0aX: y", "bad_character"),
    ("/api/orders/%zz", "bad_percent_encoding"),
    ("/api/orders/%ff%fe", "bad_encoding"),
    ("http://evil/api/orders", "bad_request_target"),
    ("*", "bad_request_target"),
    ("/api/orders/订单", "bad_character"),
    ("/api/orders#frag", "bad_character"),
    ("/api/orders?x=%00", "control_character"),
    ("/api/orders?x%00=1", "control_character"),
    ("/goods/?page=1;goods_cost__gt=5", "query_semicolon"),
    ("/goods/?page=1%3Bwarehouse=SH", None),
])
def test_ambiguous_targets_are_refused(target: str, code: str | None) -> None:
    if code is None:  # an encoded ';' is a value's character, read the same by every parser
        assert check_target("GET", target).query["page"] == "1;warehouse=SH"
        return
    with pytest.raises(HygieneError) as err:
        check_target("GET", target)
    assert err.value.code == code
    assert err.value.status == 400
    assert err.value.zh and err.value.en


def test_clean_target_is_decoded_once_and_raw_parts_kept() -> None:
    clean = check_target("GET", "/api/orders/SO%32024?warehouse=HF&warehouse=SH&q=a%20b")
    assert clean.segments == ["api", "orders", "SO2024"]
    assert clean.raw_path == "/api/orders/SO%32024"
    assert clean.raw_query == "warehouse=HF&warehouse=SH&q=a%20b"
    assert clean.query.getall("warehouse") == ["HF", "SH"]
    assert clean.query["q"] == "a b"


def test_root_path_is_one_empty_segment() -> None:
    assert check_target("GET", "/").segments == [""]


def test_one_trailing_slash_is_an_empty_last_segment() -> None:
    """Django/DRF URLs end in one '/': it is kept as a path of its own (matched exactly)."""
    clean = check_target("GET", "/goods/12/?page=2")
    assert clean.segments == ["goods", "12", ""]
    assert clean.raw_path == "/goods/12/"
    assert check_target("GET", "/goods/").segments == ["goods", ""]


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "OPTIONS", "PROPFIND"])
def test_unusual_methods_are_refused_with_405(method: str) -> None:
    with pytest.raises(HygieneError) as err:
        check_target(method, "/api/orders")
    assert err.value.status == 405


def _headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_two_authorization_headers_are_refused() -> None:
    with pytest.raises(HygieneError) as err:
        check_headers(_headers(("Authorization", "Bearer a"), ("authorization", "Bearer b")), ())
    assert err.value.code == "duplicate_authorization"


def test_method_override_headers_are_refused() -> None:
    with pytest.raises(HygieneError) as err:
        check_headers(_headers(("x-http-method-override", "DELETE")), ("X-HTTP-Method-Override",))
    assert err.value.code == "method_override_refused"


def test_ordinary_headers_pass() -> None:
    check_headers(_headers(("Authorization", "Bearer a"), ("Accept", "application/json")), ("X-HTTP-Method-Override",))


def test_compressed_request_bodies_are_refused() -> None:
    with pytest.raises(HygieneError) as err:
        check_headers(_headers(("Content-Encoding", "gzip")), ())
    assert err.value.status == 415 and err.value.code == "unsupported_content_encoding"
    check_headers(_headers(("Content-Encoding", "identity")), ())
