"""A WMS's answer conventions: banners dropped, WMS links rewritten, failures in a 200 body read,
5xx debug pages withheld (in-process: a stand-in WMS and the real Forwarder over loopback)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from authorizer.config import AnswerSettings, UpstreamSettings
from proxy.forward import AnswerPlan, Forwarder, Outbound, Rewrite
from proxy.responses import Refusal
from proxy.upstream_answer import AnswerConventions, LinkTarget, UpstreamFailure

PUBLIC = "https://gw.example.com"
LINKS = LinkTarget(PUBLIC)
WMS = "http://wms.internal:8000"


def conventions(**kwargs: Any) -> AnswerConventions:
    return AnswerConventions(AnswerSettings(**kwargs), WMS)


def test_banner_and_hop_by_hop_headers_are_dropped_and_location_rewritten() -> None:
    upstream = CIMultiDictProxy(CIMultiDict([
        ("Server", "WSGIServer/0.2 CPython/3.8.10"), ("X-Powered-By", "Django"), ("Connection", "close, X-Trace"),
        ("X-Trace", "abc"), ("Location", "http://WMS.internal:8000/goods/?page=2"), ("Set-Cookie", "sessionid=1"),
        ("Content-Type", "application/json"), ("X-Custom", "kept")]))
    out = conventions().response_headers(upstream, LINKS)
    assert "Server" not in out and "X-Powered-By" not in out and "X-Trace" not in out and "Set-Cookie" not in out
    assert out["Location"] == "https://gw.example.com/goods/?page=2"
    assert out["X-Custom"] == "kept"


@pytest.mark.parametrize("value, expected", [
    ("http://wms.internal:8000/goods/?page=2", "https://gw.example.com/goods/?page=2"),
    ("http://wms.internal:8000", "https://gw.example.com"),
    ("http://wms.internal:80001/x", "http://wms.internal:80001/x"),       # another port is another origin
    ("http://wms.internal:8000.evil.com/x", "http://wms.internal:8000.evil.com/x"),
    ("https://cdn.example.com/img.png", "https://cdn.example.com/img.png"),
    ("/goods/?page=2", "/goods/?page=2"),
])
def test_only_the_wms_origin_is_rewritten(value: str, expected: str) -> None:
    assert conventions().rewrite_url(value, LINKS) == expected


def test_links_anywhere_in_json_are_rewritten_including_extra_origins() -> None:
    doc = {"count": 3, "next": "http://wms.internal:8000/goods/?page=2", "previous": None,
           "results": [{"image": "http://wms.example.cn/media/1.png", "name": "http://not-a-link"}]}
    outcome = conventions(origins=("http://wms.example.cn",)).inspect(doc, LINKS)
    assert outcome.links == 2
    assert doc["next"] == "https://gw.example.com/goods/?page=2"
    assert doc["results"][0] == {"image": "https://gw.example.com/media/1.png", "name": "http://not-a-link"}


@pytest.mark.parametrize("document, status", [
    ({"detail": "Please Add Openid", "status_code": 400}, 400),
    ({"detail": "x", "status_code": "403"}, 403),
    ({"status_code": True}, None),
    ({"status_code": 42}, None),
    ([{"status_code": 500}], None),
    ({"results": []}, None),
])
def test_the_status_a_200_body_reports_is_read(document: Any, status: int | None) -> None:
    assert conventions(status_field="status_code").inspect(document, LINKS).status == status


# --- the Forwarder against a stand-in WMS ------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _serve(handler: Handler) -> tuple[web.AppRunner, int]:
    """``handler`` answering every path on a free loopback port; returns the runner and the port."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def _through(wms_handler: Handler, rewrite: Rewrite | None = None,
                   answers: AnswerSettings | None = None) -> tuple[int, dict[str, str], bytes, Any]:
    """Run one GET through a Forwarder in front of ``wms_handler``; returns the client's view
    (status, headers, body) and the UpstreamResult (or the raised refusal)."""
    wms_runner, port = await _serve(wms_handler)
    outcome: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        forwarder = Forwarder(session, UpstreamSettings(url=f"http://127.0.0.1:{port}", answers=answers or
                                                        AnswerSettings(status_field="status_code")))

        async def gateway(request: web.Request) -> web.StreamResponse:
            try:
                response, result = await forwarder.forward(request, Outbound(request.raw_path, CIMultiDict()),
                                                           AnswerPlan(rewrite, {"X-Decision-Id": "d1"},
                                                                      LinkTarget(PUBLIC, "")))
            except Refusal as refusal:
                outcome["result"] = refusal
                return web.json_response({"error": refusal.code}, status=refusal.status)
            outcome["result"] = result
            return response

        gw_runner, gw_port = await _serve(gateway)
        async with session.get(f"http://127.0.0.1:{gw_port}/goods/", allow_redirects=False) as resp:
            status, headers, body = resp.status, dict(resp.headers), await resp.read()
        await gw_runner.cleanup()
    await wms_runner.cleanup()
    return status, headers, body, outcome.get("result")


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_a_5xx_debug_page_never_reaches_the_client() -> None:
    async def debug_page(_: web.Request) -> web.Response:
        return web.Response(status=500, text="<h1>OperationalError</h1><pre>HTTP_TOKEN = 'tenant-secret-hf'</pre>",
                            content_type="text/html", headers={"Server": "WSGIServer/0.2", "Retry-After": "3"})

    status, headers, body, failure = run(_through(debug_page))
    assert status == 500
    assert b"tenant-secret" not in body and b"OperationalError" not in body
    assert json.loads(body)["error"] == "upstream_error"
    assert isinstance(failure, UpstreamFailure) and failure.upstream_status == 500
    assert failure.headers == {"Retry-After": "3"}


def test_a_failure_inside_a_200_body_is_the_recorded_outcome() -> None:
    async def drf_error(_: web.Request) -> web.Response:
        return web.json_response({"detail": "Goods code exists", "status_code": 400},
                                 headers={"Server": "WSGIServer/0.2"})

    status, headers, body, result = run(_through(drf_error))
    assert status == 200 and json.loads(body)["detail"] == "Goods code exists"  # the client sees what it expects
    assert "WSGIServer" not in headers.get("Server", "")
    assert result.status == 400
    assert result.detail["upstream_http_status"] == 200 and result.detail["upstream_failure_in_body"] is True


def test_json_links_and_location_point_at_the_gateway_even_without_obligations() -> None:
    async def page(request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        return web.json_response({"count": 30, "next": f"{base}/goods/?page=2", "results": []},
                                 headers={"Location": f"{base}/goods/"}, status=201)

    status, headers, body, result = run(_through(page))
    assert status == 201
    assert json.loads(body)["next"] == "https://gw.example.com/goods/?page=2"
    assert headers["Location"] == "https://gw.example.com/goods/"
    assert result.detail["links_rewritten"] == 1


def test_masks_apply_to_error_answers_too() -> None:
    async def echo_400(_: web.Request) -> web.Response:
        return web.json_response({"goods_cost": 12.5, "detail": "bad"}, status=400)

    def mask_cost(document: Any, status: int) -> dict[str, Any]:
        document["goods_cost"] = None
        return {"masked": ["goods_cost"], "status_seen": status}

    status, _, body, result = run(_through(echo_400, Rewrite(mask_cost)))
    assert status == 400 and json.loads(body) == {"goods_cost": None, "detail": "bad"}
    assert result.detail["status_seen"] == 400


def test_an_unreadable_4xx_page_is_replaced_when_the_decision_needs_a_rewrite() -> None:
    async def html_404(_: web.Request) -> web.Response:
        return web.Response(status=404, text="<h1>Page not found</h1><p>URLconf: ^admin/ ^goods/</p>",
                            content_type="text/html")

    status, _, body, failure = run(_through(html_404, Rewrite(lambda d, s: {})))
    assert status == 404 and b"URLconf" not in body
    assert isinstance(failure, UpstreamFailure) and failure.upstream_status == 404


def test_an_unreadable_2xx_answer_is_refused_when_the_decision_needs_a_rewrite() -> None:
    async def binary(_: web.Request) -> web.Response:
        return web.Response(body=b"\x00\x01", content_type="application/octet-stream")

    status, _, _, refusal = run(_through(binary, Rewrite(lambda d, s: {})))
    assert status == 502 and refusal.code == "response_not_enforceable"


def test_an_answer_with_no_wms_link_or_status_field_is_relayed_byte_for_byte() -> None:
    raw = b'{"b": 1,   "a": "\\u5f20"}'

    async def plain(_: web.Request) -> web.Response:
        return web.Response(body=raw, content_type="application/json")

    status, _, body, result = run(_through(plain))
    assert status == 200 and body == raw and result.detail == {}


def test_escaped_wms_links_are_found_too() -> None:
    assert conventions().concerns(b'{"next": "http:\\/\\/wms.internal:8000\\/goods\\/?page=2"}')
    assert not conventions().concerns(b'{"next": "http://other:8000/goods/"}')


def test_links_keep_the_tenant_the_request_named() -> None:
    links = LinkTarget(PUBLIC, "warehouse=SH")
    c = conventions()
    assert c.rewrite_url("http://wms.internal:8000/goods/?page=2", links) == \
        "https://gw.example.com/goods/?page=2&warehouse=SH"
    assert c.rewrite_url("http://wms.internal:8000/goods/#top", links) == "https://gw.example.com/goods/?warehouse=SH#top"
    assert c.rewrite_url("http://wms.internal:8000", links) == "https://gw.example.com/?warehouse=SH"


def test_an_approved_requests_stored_answer_follows_the_same_conventions() -> None:
    """A held request runs later; its stored answer (shown to the requester) never carries a
    debug page, and its links and body status are read like a forwarded answer's."""
    from proxy.replay import ApprovalExecutor

    executor = ApprovalExecutor.__new__(ApprovalExecutor)
    executor._conventions = conventions(status_field="status_code")
    executor._links = LINKS
    status, body, ctype, facts = executor._safe_answer(
        500, b"<pre>HTTP_TOKEN = 'openid-hf-5b1c2d'</pre>", "text/html")
    assert status == 500 and b"openid" not in body and ctype == "application/json"
    assert facts == {"upstream_body": "withheld"}
    status, body, _, facts = executor._safe_answer(
        200, b'{"detail": "x", "status_code": 400, "next": "http://wms.internal:8000/a/"}', "application/json")
    assert status == 400 and facts["upstream_failure_in_body"] is True
    assert json.loads(body)["next"] == "https://gw.example.com/a/"


def test_unicode_escaped_links_and_fields_are_read() -> None:
    assert conventions().concerns(b'{"next": "http:\\u002f\\u002fwms.internal:8000/a/"}')
    assert conventions(status_field="status_code").concerns(b'{"status\\u005fcode": 404}')


def test_a_chunked_json_answer_is_read_for_the_conventions() -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b'{"next": "http://' + request.host.encode() + b'/goods/?page=2", ')
        await response.write(b'"status_code": 404}')
        await response.write_eof()
        return response

    status, _, body, result = run(_through(chunked))
    assert status == 200 and json.loads(body)["next"] == "https://gw.example.com/goods/?page=2"
    assert result.status == 404


def test_escaped_links_and_fields_beside_escaped_text_are_read_when_masking() -> None:
    """An answer whose text is all \\u escapes (a WMS encoding with ensure_ascii): a link or the
    status field spelled with escapes is still found and rewritten; without either, the masked
    answer is not walked for links (and says none were rewritten)."""

    async def escaped(request: web.Request) -> web.Response:
        host = request.host.replace(":", "\\u003a").encode()
        raw = (b'{"name": "\\u5f20\\u4e09", "amount": 3.5, "status_code": 404, '
               b'"next": "http\\u003a\\u002f\\u002f' + host + b'/goods/?page=2"}')
        return web.Response(body=raw, content_type="application/json")

    async def escaped_text_only(_: web.Request) -> web.Response:
        return web.Response(body=b'{"name": "\\u5f20\\u4e09", "amount": 3.5}', content_type="application/json")

    def mask_amount(document: Any, status: int) -> dict[str, Any]:
        document["amount"] = None
        return {"masked": ["amount"]}

    status, _, body, result = run(_through(escaped, Rewrite(mask_amount)))
    document = json.loads(body)
    assert document["next"] == "https://gw.example.com/goods/?page=2" and document["amount"] is None
    assert document["name"] == "张三" and result.status == 404 and result.detail["links_rewritten"] == 1
    status, _, body, result = run(_through(escaped_text_only, Rewrite(mask_amount)))
    assert json.loads(body) == {"name": "张三", "amount": None}
    assert "links_rewritten" not in result.detail and result.status == 200


@pytest.mark.parametrize("masked", [False, True], ids=["relayed", "masked"])
def test_half_escaped_links_are_rewritten(masked: bool) -> None:
    async def half_escaped(request: web.Request) -> web.Response:
        raw = b'{"amount": 1, "next": "http:/\\/' + request.host.encode() + b'/goods/?page=2"}'
        return web.Response(body=raw, content_type="application/json")

    rewrite = Rewrite(lambda d, s: d.update(amount=None) or {}) if masked else None
    _, _, body, result = run(_through(half_escaped, rewrite))
    assert json.loads(body)["next"] == "https://gw.example.com/goods/?page=2"
    assert result.detail["links_rewritten"] == 1


def test_a_utf16_answer_is_read_for_its_status_when_masking() -> None:
    async def utf16(_: web.Request) -> web.Response:
        return web.Response(body='{"status_code": 403, "amount": 2}'.encode("utf-16"), content_type="application/json")

    _, _, body, result = run(_through(utf16, Rewrite(lambda d, s: d.update(amount=None) or {})))
    assert result.status == 403 and json.loads(body) == {"status_code": 403, "amount": None}


def test_an_answer_nested_deeper_than_orjson_writes_is_still_masked() -> None:
    deep = "[" * 300 + "]" * 300

    async def nested(_: web.Request) -> web.Response:
        return web.Response(body=f'{{"x": "\\u5f20", "amount": 3, "deep": {deep}}}'.encode(),
                            content_type="application/json")

    status, _, body, _ = run(_through(nested, Rewrite(lambda d, s: d.update(amount=None) or {})))
    assert status == 200 and json.loads(body)["amount"] is None and json.loads(body)["x"] == "张"


@pytest.mark.parametrize("text, origins, expected", [
    ('{"a": "http://wms.internal:8000/x"}', (), True),
    ('{"a": "HTTP://WMS.Internal:8000/x", "名": "仓库"}', (), True),          # case-insensitive, non-ASCII around
    ('{"a": "http://wms.internal:8001/x", "名": "仓库"}', (), False),
    ('{"a": "http://wms.internal:800"}', (), False),
    # the Kelvin sign lowers to "k" and U+0130 to "i" + a combining dot: found as the text lowered finds them
    ('{"a": "http://wms.\u212aiosk:8000/x"}', ("http://wms.kiosk:8000",), True),
    ('{"a": "http://wms.\u0130nternal:8000/x"}', (), False),
    ('{"a": "http://wms.example.cn/\u0130"}', ("http://wms.example.cn",), True),
    ('{"a": "http://仓库.example.cn/x"}', ("http://仓库.EXAMPLE.cn",), True),  # a non-ASCII origin
    ('{"a": "http://仓库.example.cn/x"}', ("http://仓库.example.com",), False),
])
def test_the_plain_text_search_finds_what_the_lowered_text_holds(text: str, origins: tuple[str, ...],
                                                                   expected: bool) -> None:
    found = conventions(origins=origins).concerns_plain(text.encode("utf-8"))
    lowered = text.lower()
    assert found is expected
    assert found is any(o.lower() in lowered for o in (WMS, *origins))  # the definition it stands for


def test_the_plain_text_search_finds_the_status_field_by_member_name() -> None:
    assert conventions(status_field="状态码").concerns_plain('{"状态码": 404}'.encode())
    assert not conventions(status_field="status_code").concerns_plain(b'{"status": 404}')
    assert not conventions().concerns_plain(b'{"status_code": 404}')


def test_a_raw_answer_is_decoded_when_only_its_text_can_settle_it() -> None:
    kiosk = conventions(origins=("http://wms.kiosk:8000",))
    assert kiosk.concerns('{"a": "http://wms.\u212aiosk:8000/x"}'.encode())  # the Kelvin sign lowers to "k"
    assert not kiosk.concerns('{"a": "\u212a", "b": "http://elsewhere/"}'.encode())  # decoded: no origin
    assert kiosk.concerns('{"a": "\u212a", "b": "'.encode() + b'\xff"}')  # not UTF-8: cannot tell, parsed
    wide = conventions(origins=("http://仓库.cn",))
    assert not wide.concerns(b'{"a": 1}') and wide.concerns('{"a": "HTTP://仓库.CN/x"}'.encode())  # non-ASCII origin
    assert not conventions().concerns('{"a": "\u212a \u0130"}'.encode())  # no origin could match through them


def test_a_masked_answer_without_unicode_escapes_is_searched_as_it_came() -> None:
    """No ``\\u`` or ``\\/`` escape: the answer's own bytes are searched for links (its ``\\n`` and
    ``\\"`` escapes are orjson's too), upper-case origins and non-ASCII text included."""

    async def page(request: web.Request) -> web.Response:
        raw = ('{"name": "张三\\n\\"VIP\\"", "amount": 3.5, '
               f'"next": "HTTP://{request.host}/goods/?page=2"}}').encode()
        return web.Response(body=raw, content_type="application/json")

    async def no_link(_: web.Request) -> web.Response:
        return web.Response(body='{"name": "张三\\t", "amount": 3.5, "url": "http://other/"}'.encode(),
                            content_type="application/json")

    mask = Rewrite(lambda d, s: d.update(amount=None) or {"masked": ["amount"]})
    _, _, body, result = run(_through(page, mask))
    assert json.loads(body) == {"name": '张三\n"VIP"', "amount": None, "next": "https://gw.example.com/goods/?page=2"}
    assert result.detail["links_rewritten"] == 1
    _, _, body, result = run(_through(no_link, mask))
    assert json.loads(body) == {"name": "张三\t", "amount": None, "url": "http://other/"}
    assert "links_rewritten" not in result.detail
