"""Query parameter rules: per-route allow/deny lists, and no filter or ordering on a masked field."""

from __future__ import annotations

from multidict import MultiDict

from authorizer.authz.query_params import QuerySpec, masked_lookups, refused_parameters

MASKED = frozenset({"goods_cost", "phone"})


def test_filters_and_orderings_on_masked_fields_are_found() -> None:
    query = MultiDict([("goods_cost__gt", "50"), ("goods_code", "A1"), ("ordering", "goods_name,-goods_cost"),
                       ("supplier__phone__icontains", "138"), ("goods_cost", "1")])
    assert masked_lookups(query, QuerySpec(), MASKED) == [
        "goods_cost", "goods_cost__gt", "ordering=goods_name,-goods_cost", "supplier__phone__icontains"]


def test_nothing_is_refused_for_a_caller_who_sees_everything() -> None:
    query = MultiDict([("goods_cost__gt", "50"), ("ordering", "-goods_cost")])
    assert masked_lookups(query, QuerySpec(), frozenset()) == []


def test_the_route_names_its_ordering_parameters() -> None:
    query = MultiDict([("o", "goods_cost"), ("ordering", "goods_cost")])
    assert masked_lookups(query, QuerySpec(ordering=("o",)), MASKED) == ["o=goods_cost"]


def test_allow_list_refuses_other_parameters_but_not_the_gateways_own() -> None:
    spec = QuerySpec(allow=("page", "page_size", "goods_name__*"))
    query = MultiDict([("page", "2"), ("goods_name__icontains", "螺"), ("debug", "1"), ("warehouse", "HF"),
                       ("format", "api")])
    assert refused_parameters(query, spec, frozenset({"warehouse"})) == ["debug", "format"]


def test_deny_list_refuses_only_what_it_names() -> None:
    spec = QuerySpec(deny=("search", "format"))
    query = MultiDict([("search", "张三"), ("page", "1")])
    assert refused_parameters(query, spec, frozenset()) == ["search"]


def test_bracket_dot_and_other_ordering_forms_are_found() -> None:
    query = MultiDict([("filter[goods_cost][gt]", "5"), ("filter{phone.startswith}", "138"), ("o", "-goods_cost"),
                       ("sort_by", "goods_cost"), ("filter[goods_code]", "A1")])
    assert masked_lookups(query, QuerySpec(), MASKED) == [
        "filter[goods_cost][gt]", "filter{phone.startswith}", "o=-goods_cost", "sort_by=goods_cost"]
