"""Tenant per warehouse (which WMS tenant a request runs in) and the caller's identity as the
WMS wants it (header templates with per-tenant attributes, body fields that name who acts)."""

from __future__ import annotations

import json

import pytest
from multidict import MultiDict

from authorizer.authn.identity import Principal
from authorizer.authz.routes import BodyIdentityField
from authorizer.authz.tenancy import TenantError, TenantSettings, choose_tenant
from authorizer.enforce.caller_identity import MissingIdentity, caller_value, render, template_problems
from proxy.body_identity import enforce_body_identity
from proxy.responses import Refusal

TENANT = TenantSettings("warehouse", "warehouse")


def person(warehouses: tuple[str, ...], **attributes: object) -> Principal:
    return Principal("u1", "keeper.hf", ("warehouse_keeper",), {"warehouse": warehouses}, attributes=dict(attributes))


def test_a_caller_with_one_warehouse_needs_not_name_it() -> None:
    assert choose_tenant(TENANT, MultiDict(), [], person(("HF",))) == "HF"


def test_the_gateway_parameter_names_the_tenant() -> None:
    assert choose_tenant(TENANT, MultiDict(warehouse="SH"), [], person(("*",))) == "SH"


def test_a_named_tenant_outside_the_callers_scope_is_refused_with_403() -> None:
    with pytest.raises(TenantError) as err:
        choose_tenant(TENANT, MultiDict(warehouse="SH"), [], person(("HF",)))
    assert (err.value.code, err.value.status) == ("tenant_out_of_scope", 403)
    with pytest.raises(TenantError):
        choose_tenant(TENANT, MultiDict(), ["SH"], person(("HF",)))


def test_a_route_attribute_names_the_tenant() -> None:
    assert choose_tenant(TENANT, MultiDict(), ["GZ"], person(("*",))) == "GZ"


@pytest.mark.parametrize("query, route_values, scope, code", [
    (MultiDict(), [], ("HF", "SH"), "tenant_required"),
    (MultiDict(), [], ("*",), "tenant_required"),
    (MultiDict(), [], (), "tenant_required"),
    (MultiDict([("warehouse", "HF"), ("warehouse", "SH")]), [], ("*",), "ambiguous_tenant"),
    (MultiDict(warehouse="HF"), ["SH"], ("*",), "ambiguous_tenant"),
    (MultiDict(warehouse="*"), [], ("*",), "ambiguous_tenant"),
])
def test_a_tenant_that_cannot_be_chosen_is_a_clear_error(query: MultiDict[str], route_values: list[str],
                                                         scope: tuple[str, ...], code: str) -> None:
    with pytest.raises(TenantError) as err:
        choose_tenant(TENANT, query, route_values, person(scope))
    assert err.value.code == code and err.value.zh and err.value.en


@pytest.mark.parametrize("value, tenant, expected", [
    (["HF:12", "SH:7"], "SH", "7"),
    (["HF=12"], "HF", "12"),
    (["HF:12"], "GZ", None),
    ("HF:12", "HF", "12"),            # a single-valued attribute is parsed too
    ("HF:12", "SH", None),            # ... and never sent to another tenant as "HF:12"
    (["*:42", "SH:7"], "HF", "42"),   # the same id in every tenant, said so
    (["*:42", "SH:7"], "SH", "7"),
    ({"HF": 12, "SH": 7}, "HF", "12"),
    ({"HF": 12}, None, None),
    (42, "HF", None),                 # a plain value could be someone else's id in another tenant
    (["only"], "HF", None),
    (42, None, "42"),                 # without tenants a plain value is the value
    (["only"], None, "only"),
    (["HF:12"], None, None),
    (["a", "b"], None, None),
    (True, "HF", None),
    (None, "HF", None),
])
def test_per_tenant_attribute_values(value: object, tenant: str | None, expected: str | None) -> None:
    assert caller_value(value, tenant) == expected


def test_templates_fill_username_and_per_tenant_attributes() -> None:
    keeper = person(("HF",), wms_staff_id=["HF:12", "SH:7"])
    assert render("{username}/{attr:wms_staff_id}", keeper, "HF") == "keeper.hf/12"
    with pytest.raises(MissingIdentity, match="wms_staff_id"):
        render("{attr:wms_staff_id}", keeper, "GZ")
    assert template_problems("{username} {nme} {attr:x}") == ["nme"]


def test_a_value_with_a_line_break_is_never_put_in_a_header() -> None:
    with pytest.raises(MissingIdentity):
        render("{attr:staff}", person(("HF",), staff="12\r\nX-Admin: 1"), "HF")


def test_body_identity_is_forced_to_the_caller() -> None:
    body = {"asn_code": "A1", "creater": "admin", "operator_id": "99"}
    fields = (BodyIdentityField("creater", "{username}"),
              BodyIdentityField("operator_id", "{attr:wms_staff_id}", integer=True))
    raw, changed = enforce_body_identity(fields, body, person(("HF",), wms_staff_id=["HF:12"]), "HF")
    assert changed == ["creater", "operator_id"]
    assert raw is not None and json.loads(raw) == {"asn_code": "A1", "creater": "keeper.hf", "operator_id": 12}


def test_body_identity_in_refuse_mode_refuses_someone_else() -> None:
    fields = (BodyIdentityField("creater", "{username}", mode="refuse"),)
    assert enforce_body_identity(fields, {"creater": "keeper.hf"}, person(("HF",)), "HF") == (None, [])
    assert enforce_body_identity(fields, {}, person(("HF",)), "HF") == (None, [])
    with pytest.raises(Refusal) as err:
        enforce_body_identity(fields, {"creater": "admin"}, person(("HF",)), "HF")
    assert err.value.status == 403 and err.value.code == "identity_field_mismatch"


def test_body_identity_without_the_callers_value_is_refused() -> None:
    fields = (BodyIdentityField("operator_id", "{attr:wms_staff_id}"),)
    with pytest.raises(Refusal) as err:
        enforce_body_identity(fields, {}, person(("HF",)), "HF")
    assert err.value.code == "no_caller_identity"
