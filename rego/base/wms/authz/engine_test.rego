# Tests of the rules and the layers on their own, with a small site layer given here:
# they pass whatever a deployment's policy folder holds (its own tests sit beside its data).
package wms.authz_test

import data.wms.authz

engine_site_roles := {
	"clerk": {"title": {"zh-CN": "文员", "en": "Clerk"}, "permissions": ["goods:view", "portal:view"]},
	"sysadmin": {"title": {"zh-CN": "系统管理员", "en": "System administrator"}, "permissions": ["goods:view"]},
}

engine_site_modules := {"goods": {"title": {"zh-CN": "商品", "en": "Goods"}, "dimensions": ["warehouse"]}}

engine_site_masks := {"goods": [{"permission": "goods_cost:view", "fields": ["goods_cost"]}]}

engine_hf := {"warehouse": ["HF"], "channel": ["*"], "order_type": ["*"]}

engine_ask(roles, module, verb, resource) := {
	"subject": {"id": "u1", "username": "t", "roles": roles, "scope": engine_hf},
	"action": {"module": module, "verb": verb},
	"resource": resource,
}

engine_item(warehouse) := {"kind": "item", "id": "G1", "attributes": {"warehouse": [warehouse]}}

test_every_message_code_has_a_place_in_the_reason_order if {
	every code, _ in authz.messages {
		code in authz.reason_order
	}
}

test_a_site_role_on_a_site_module_is_decided_with_scope_and_masks if {
	d := authz.decision with input as engine_ask(["clerk"], "goods", "view", engine_item("HF"))
		with data.wms.roles as engine_site_roles
		with data.wms.modules as engine_site_modules
		with data.wms.masks as engine_site_masks
	d.allow
	d.obligations.mask == {"goods_cost"}
	out := authz.decision with input as engine_ask(["clerk"], "goods", "view", engine_item("SH"))
		with data.wms.roles as engine_site_roles
		with data.wms.modules as engine_site_modules
	not out.allow
}

test_a_roles_permissions_are_the_union_of_both_layers if {
	perms := authz.role_permissions.sysadmin with data.wms.roles as engine_site_roles
	{"goods:view", "audit:view", "iam:update"} - perms == set()
	d := authz.decision with input as engine_ask(["sysadmin"], "audit", "view", {"kind": "list", "attributes": {}})
		with data.wms.roles as engine_site_roles
		with data.wms.modules as engine_site_modules
	d.allow
}

test_the_gateways_own_modules_cannot_be_redefined_by_a_site if {
	m := authz.modules with data.wms.modules as {"audit": {"dimensions": ["warehouse"]}}
	m.audit.dimensions == []
}

test_the_gateways_own_high_risk_operation_holds_widening_access_changes if {
	base := engine_ask(["sysadmin"], "iam", "update", {"kind": "item", "id": "x", "attributes": {}})
	inp := object.union(base, {
		"subject": {"id": "u1", "username": "t", "roles": ["sysadmin"], "scope": engine_hf, "acr": "mfa", "auth_time": 1},
		"request": {"method": "POST", "route": "/_gateway/access/set-roles", "time_ms": 60000},
	})
	d := authz.decision with input as inp with data.wms.roles as engine_site_roles
	d.allow
	d.high_risk == "iam_change"
	d.obligations.approval.operation == "iam_change"
}

test_without_site_data_only_the_gateways_own_modules_exist if {
	d := authz.decision with input as engine_ask(["clerk"], "goods", "view", engine_item("HF"))
		with data.wms.roles as {}
		with data.wms.modules as {}
	not d.allow
	"unknown_module" in {r.code | some r in d.reasons}
}

engine_weakening_ops := {"operations": {"aa_bulk_onboarding": {
	"title": {"zh-CN": "批量入职", "en": "bulk onboarding"},
	"when": {"module": "iam", "verbs": ["create", "update"]},
}}}

test_a_deployment_cannot_lift_the_hold_on_access_changes if {
	inp := object.union(engine_ask(["sysadmin"], "iam", "create", {"kind": "item", "id": "x", "attributes": {}}), {
		"subject": {"id": "u1", "username": "t", "roles": ["sysadmin"], "scope": engine_hf, "acr": "pwd", "auth_time": 1},
		"request": {"method": "POST", "route": "/_gateway/access/bulk-grant", "time_ms": 60000},
	})
	d := authz.decision with input as inp with data.wms.roles as engine_site_roles
		with data.wms.high_risk as engine_weakening_ops
	not d.allow
	d.status == 401
	d.high_risk == "iam_change"
}

test_a_deployment_cannot_lower_the_acr_levels if {
	levels := authz.acr_levels with data.wms.high_risk as {"acr_levels": {"pwd": 2, "mfa": 2}}
	levels.pwd == 1
}

test_render_formats_only_what_has_arguments_or_percent_signs if {
	authz.render("允许", []) == "允许"
	authz.render("100%% 完成", []) == "100% 完成"
	authz.render("缺少权限 %s(%d 秒)", ["orders:view", 300]) == "缺少权限 orders:view(300 秒)"
}

test_reasons_with_one_code_are_listed_in_value_order if {
	d := authz.decision with input as {
		"subject": {"id": "u1", "username": "t", "roles": ["sysadmin"], "scope": {}},
		"action": {"module": "goods", "verb": "view", "also": [{"module": "goods_cost", "verb": "view"}]},
		"resource": engine_item("HF"),
	}
		with data.wms.roles as {"clerk": {"permissions": ["goods:view", "goods_cost:view"]}}
		with data.wms.modules as engine_site_modules
	codes := [r.code | some r in d.reasons]
	codes == ["missing_permission", "missing_permission"]
	d.reasons == sort(d.reasons)
}

engine_export_roles := {
	"clerk": {"title": {"zh-CN": "文员", "en": "Clerk"}, "permissions": ["goods:export"]},
	"buyer": {"title": {"zh-CN": "采购", "en": "Buyer"}, "permissions": ["goods:export", "goods_cost:view"]},
}

test_an_export_carries_its_thresholds_and_the_personal_data_it_leaves_unmasked if {
	list := {"kind": "list", "attributes": {}}
	clerk := authz.decision with input as engine_ask(["clerk"], "goods", "export", list)
		with data.wms.roles as engine_export_roles
		with data.wms.modules as engine_site_modules
		with data.wms.masks as engine_site_masks
		with data.wms.exports as {}
	clerk.obligations.export == {
		"reason_over_rows": 1000, "approve_over_rows": 5000, "refuse_over_rows": 10000,
		"approval": {"operation": "large_export", "approvals": 1, "expires_seconds": 86400},
		"unmasked_pii": [],
	}
	buyer := authz.decision with input as engine_ask(["buyer"], "goods", "export", list)
		with data.wms.roles as engine_export_roles
		with data.wms.modules as engine_site_modules
		with data.wms.masks as engine_site_masks
		with data.wms.exports as {"reason_over_rows": 50, "approve_over_rows": 99999, "refuse_over_rows": 99999}
	buyer.obligations.export.reason_over_rows == 50 # a deployment may lower a threshold
	buyer.obligations.export.approve_over_rows == 5000 # but never raise one
	buyer.obligations.export.refuse_over_rows == 10000
	buyer.obligations.export.unmasked_pii == ["goods_cost"]
	blank := authz.decision with input as engine_ask(["clerk"], "goods", "export", list)
		with data.wms.roles as engine_export_roles
		with data.wms.modules as engine_site_modules
		with data.wms.masks as engine_site_masks
		with data.wms.exports as {"approve_over_rows": null, "reason_over_rows": "none"}
	blank.obligations.export.approve_over_rows == 5000 # an empty value cannot switch four-eyes off
	blank.obligations.export.reason_over_rows == 1000
	view := authz.decision with input as engine_ask(["clerk"], "goods", "view", list)
		with data.wms.roles as engine_site_roles
		with data.wms.modules as engine_site_modules
	view.obligations.export == null
}

test_a_deployment_cannot_take_the_name_of_the_held_export if {
	ops := {"large_export": {"title": {"zh-CN": "x", "en": "x"}, "when": {"module": "goods", "verbs": ["export"]}}}
	not authz.high_risk_operations.large_export with data.wms.high_risk as {"operations": ops}
}

test_an_approver_of_a_large_export_is_told_what_they_approve if {
	held := {"id": "a", "operation": "large_export", "requester_id": "someone", "deciders": []}
	ask := engine_ask(["clerk"], "goods", "approve", {"kind": "list", "attributes": {}})
	approve := object.union(ask, {"approval": held})
	authz.operation_title == {"zh-CN": "大批量导出", "en": "large export"} with input as approve
}

engine_kind_masks := {"goods": [
	{"permission": "goods_cost:view", "fields": ["goods_cost"], "kind": "band", "width": 50},
	{
		"permission": "supplier:view", "fields": ["supplier_phone"],
		"kind_with": {"portal:view": {"kind": "partial", "keep_last": 4}},
	},
	{"permission": "supplier:view", "fields": ["supplier_id"], "kind": "hash"},
	{"permission": "supplier:view", "fields": ["created_at"], "kind": "month"},
	{"permission": "supplier:view", "fields": ["goods_cost", "note"], "kind": "null"},
	{"permission": "supplier:view", "fields": ["batch"], "kind": "scramble"},
]}

test_each_masked_field_gets_the_strongest_kind_of_the_rules_masking_it if {
	d := authz.decision with input as engine_ask(["clerk"], "goods", "view", engine_item("HF"))
		with data.wms.roles as engine_site_roles
		with data.wms.modules as engine_site_modules
		with data.wms.masks as engine_kind_masks
	d.obligations.mask == {"goods_cost", "supplier_phone", "supplier_id", "created_at", "note", "batch"}

	# goods_cost: band (50) and null: null wins; batch: an unknown kind is redact, left out
	d.obligations.mask_kinds == {
		"goods_cost": {"kind": "null"},
		"supplier_phone": {"kind": "partial", "keep_last": 4},
		"supplier_id": {"kind": "hash"},
		"created_at": {"kind": "month"},
		"note": {"kind": "null"},
	}
}

test_a_kind_with_applies_only_to_holders_of_its_permission if {
	d := authz.decision with input as engine_ask(["sysadmin"], "goods", "view", engine_item("HF"))
		with data.wms.roles as engine_site_roles
		with data.wms.modules as engine_site_modules
		with data.wms.masks as engine_kind_masks

	# sysadmin lacks portal:view: the phone is redacted, so it has no kind entry
	"supplier_phone" in d.obligations.mask
	not d.obligations.mask_kinds.supplier_phone
}
