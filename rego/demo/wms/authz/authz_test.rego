package wms.authz_test

import data.wms.authz

hf_staff := {"warehouse": ["HF"], "channel": ["*"], "order_type": ["*"]}

everything := {"warehouse": ["*"], "channel": ["*"], "order_type": ["*"]}

person(roles, scope) := {"id": "u1", "username": "tester", "roles": roles, "scope": scope}

order(warehouse, channel) := {
	"kind": "item",
	"id": "SO1",
	"attributes": {"warehouse": [warehouse], "channel": [channel], "order_type": ["b2c"]},
}

request(subject, module, verb, resource) := {
	"subject": subject,
	"action": {"module": module, "verb": verb},
	"resource": resource,
}

reason_codes(d) := {r.code | some r in d.reasons}

test_picker_views_order_in_own_warehouse if {
	d := authz.decision with input as request(person(["picker"], hf_staff), "orders", "view", order("HF", "jd"))
	d.allow
	d.status == 200
	reason_codes(d) == {"allowed"}
}

test_picker_cannot_confirm_order_of_other_warehouse if {
	d := authz.decision with input as request(person(["picker"], hf_staff), "orders", "pick", order("SH", "jd"))
	not d.allow
	d.status == 403
	"out_of_scope" in reason_codes(d)
}

test_picker_cannot_adjust_inventory_and_reason_names_permission if {
	res := {"kind": "item", "attributes": {"warehouse": ["HF"]}}
	d := authz.decision with input as request(person(["picker"], hf_staff), "inventory", "update", res)
	not d.allow
	some r in d.reasons
	r.code == "missing_permission"
	contains(r.en, "inventory:update")
	contains(r["zh-CN"], "inventory:update")
	contains(r.en, "warehouse_keeper")
}

test_picker_sees_orders_masked if {
	d := authz.decision with input as request(person(["picker"], hf_staff), "orders", "view", order("HF", "jd"))
	hidden := {"amount", "items[].price", "customer_name", "customer_phone", "address", "declared_value"}
	hidden - d.obligations.mask == set()
}

test_finance_sees_amounts_but_not_customer_contact if {
	d := authz.decision with input as request(person(["finance"], everything), "orders", "view", order("SZ", "jd"))
	d.allow
	{"customer_name", "customer_phone", "address"} - d.obligations.mask == set()
	not "amount" in d.obligations.mask
	not "items[].price" in d.obligations.mask
}

test_extra_permissions_are_all_required if {
	inp := object.union(
		request(person(["reviewer"], hf_staff), "orders", "update", order("HF", "jd")),
		{"action": {"module": "orders", "verb": "update", "also": [{"module": "order_items", "verb": "update"}]}},
	)
	d := authz.decision with input as inp
	not d.allow
	count([r | some r in d.reasons; r.code == "missing_permission"]) == 2
}

test_keeper_list_is_narrowed_to_own_warehouse if {
	res := {"kind": "list", "attributes": {}}
	d := authz.decision with input as request(person(["warehouse_keeper"], hf_staff), "inventory", "view", res)
	d.allow
	d.obligations.row_filter == {"warehouse": ["HF"]}
}

test_channel_ops_list_filter_covers_all_dimensions if {
	scope := {"warehouse": ["*"], "channel": ["taobao"], "order_type": ["*"]}
	res := {"kind": "list", "attributes": {}}
	d := authz.decision with input as request(person(["channel_ops"], scope), "orders", "view", res)
	d.obligations.row_filter == {"warehouse": ["*"], "channel": ["taobao"], "order_type": ["*"]}
}

test_list_without_scope_on_a_dimension_is_denied if {
	res := {"kind": "list", "attributes": {}}
	scope := {"warehouse": ["HF"], "channel": ["*"]}
	d := authz.decision with input as request(person(["picker"], scope), "orders", "view", res)
	not d.allow
	"no_scope" in reason_codes(d)
}

test_missing_scope_dimension_means_nothing_not_everything if {
	scope := {"warehouse": ["HF"]}
	d := authz.decision with input as request(person(["picker"], scope), "orders", "view", order("HF", "jd"))
	not d.allow
}

test_aggregate_report_needs_star_channel_scope if {
	scope := {"warehouse": ["*"], "channel": ["amazon"], "order_type": ["*"]}
	res := {"kind": "aggregate", "attributes": {"channel": ["*"]}}
	d := authz.decision with input as request(person(["channel_ops"], scope), "reports.sales", "view", res)
	not d.allow
	"aggregate_needs_full_scope" in reason_codes(d)
}

test_channel_report_for_own_channel_is_allowed if {
	scope := {"warehouse": ["*"], "channel": ["amazon"], "order_type": ["*"]}
	res := {"kind": "aggregate", "attributes": {"channel": ["amazon"]}}
	d := authz.decision with input as request(person(["channel_ops"], scope), "reports.sales", "view", res)
	d.allow
}

test_bulk_resource_must_lie_wholly_in_scope if {
	res := {"kind": "bulk", "attributes": {"warehouse": ["HF", "SH"], "channel": ["jd"], "order_type": ["b2c"]}}
	d := authz.decision with input as request(person(["warehouse_keeper"], hf_staff), "orders", "update", res)
	not d.allow
	some r in d.reasons
	r.code == "out_of_scope"
	contains(r.en, "warehouse is outside your data scope [HF]")
	not contains(r.en, "SH")
}

test_unresolved_attribute_is_denied if {
	res := {"kind": "item", "attributes": {"warehouse": []}}
	d := authz.decision with input as request(person(["reviewer"], everything), "reviews", "view", res)
	not d.allow
	"scope_unresolved" in reason_codes(d)
}

test_existence_sensitive_module_answers_404 if {
	res := {"kind": "item", "attributes": {"warehouse": ["SZ"], "channel": ["amazon"]}}
	d := authz.decision with input as request(person(["warehouse_keeper"], hf_staff), "customs", "view", res)
	not d.allow
	d.status == 404
}

test_existence_sensitive_module_without_permission_answers_403 if {
	res := {"kind": "item", "attributes": {"warehouse": ["HF"], "channel": ["amazon"]}}
	d := authz.decision with input as request(person(["picker"], hf_staff), "customs", "view", res)
	d.status == 403
}

test_unknown_module_is_denied if {
	d := authz.decision with input as request(person(["sysadmin"], everything), "payroll", "view", order("HF", "jd"))
	not d.allow
	"unknown_module" in reason_codes(d)
}

test_person_without_roles_is_told_so if {
	d := authz.decision with input as request(person([], everything), "orders", "view", order("HF", "jd"))
	not d.allow
	"no_roles" in reason_codes(d)
}

test_empty_input_is_denied if {
	d := authz.decision with input as {}
	not d.allow
	d.status == 403
}

test_supervisor_cannot_pick if {
	d := authz.decision with input as request(person(["ops_supervisor"], everything), "orders", "pick", order("HF", "jd"))
	not d.allow
}

test_roles_union_permissions if {
	d := authz.decision with input as request(
		person(["picker", "finance"], hf_staff), "orders", "view",
		order("HF", "jd"),
	)
	d.allow
	not "amount" in d.obligations.mask
}

test_policy_revision_defaults_to_unversioned if {
	d := authz.decision with input as {}
	d.policy_revision == "unversioned"
}

test_policy_revision_comes_from_the_bundle_manifest if {
	d := authz.decision with input as {} with data.system.bundles.wms.manifest.revision as "sha256:abc"
	d.policy_revision == "sha256:abc"
}

test_missing_resource_answers_404_for_a_permitted_person if {
	res := {
		"kind": "item", "id": "SO404", "found": false,
		"attributes": {"warehouse": [], "channel": [], "order_type": []},
	}
	d := authz.decision with input as request(person(["picker"], hf_staff), "orders", "view", res)
	not d.allow
	d.status == 404
	reason_codes(d) == {"not_found"}
}

test_missing_resource_answers_403_without_permission if {
	res := {"kind": "item", "id": "SO404", "attributes": {}, "found": false}
	d := authz.decision with input as request(person(["picker"], hf_staff), "inventory", "update", res)
	d.status == 403
	"missing_permission" in reason_codes(d)
}

test_order_type_scope_is_enforced if {
	scope := {"warehouse": ["*"], "channel": ["*"], "order_type": ["b2c"]}
	cross := {
		"kind": "item", "id": "SO9",
		"attributes": {"warehouse": ["SZ"], "channel": ["amazon"], "order_type": ["cross_border"]},
	}
	d := authz.decision with input as request(person(["channel_ops"], scope), "orders", "view", cross)
	not d.allow
	some r in d.reasons
	r.code == "out_of_scope"
	contains(r.en, "order type is outside your data scope [b2c]")
}

test_order_type_scope_narrows_lists if {
	scope := {"warehouse": ["*"], "channel": ["*"], "order_type": ["b2b", "b2c"]}
	res := {"kind": "list", "attributes": {}}
	d := authz.decision with input as request(person(["finance"], scope), "orders", "view", res)
	d.obligations.row_filter.order_type == ["b2b", "b2c"]
}

test_masks_apply_to_answers_of_other_modules if {
	d := authz.decision with input as request(person(["reviewer"], hf_staff), "reviews", "review", order("HF", "jd"))
	d.allow
	"amount" in d.obligations.mask
	"customer_phone" in d.obligations.mask
}

test_customer_records_need_an_all_warehouse_scope if {
	customer := {"kind": "item", "id": "C1", "attributes": {"warehouse": ["*"], "channel": ["jd"]}}
	packer := authz.decision with input as request(person(["packer"], hf_staff), "customers", "view", customer)
	packer.status == 404
	everywhere := {"warehouse": ["*"], "channel": ["*"], "order_type": ["*"]}
	ops := authz.decision with input as request(person(["packer"], everywhere), "customers", "view", customer)
	ops.allow
}

temp_picker_at(now_s, valid_from, valid_until) := {
	"subject": {
		"id": "t", "username": "temp01", "roles": ["temp_picker"], "scope": hf_staff,
		"grants": [{"role": "temp_picker", "valid_from": valid_from, "valid_until": valid_until}],
	},
	"action": {"module": "orders", "verb": "pick"},
	"resource": order("HF", "jd"),
	"request": {"time_ms": now_s * 1000},
}

test_temporary_grant_counts_inside_its_window if {
	d := authz.decision with input as temp_picker_at(1500, 1000, 2000)
	d.allow
}

test_temporary_grant_gives_nothing_after_its_end if {
	d := authz.decision with input as temp_picker_at(2000, 1000, 2000)
	not d.allow
	d.reasons[0].code == "grant_outside_window"
	contains(d.reasons[0].en, "temp_picker")
}

test_temporary_grant_gives_nothing_before_its_start if {
	d := authz.decision with input as temp_picker_at(999, 1000, 2000)
	not d.allow
}

test_a_permanent_role_is_not_limited_by_another_roles_window if {
	inp := temp_picker_at(5000, 1000, 2000)
	d := authz.decision with input as object.union(inp, {"subject": {"roles": ["temp_picker", "picker"]}})
	d.allow
}

scoped_masks := {"goods": [
	{"permission": "order_amounts:view", "fields": ["goods_cost"], "modules": ["inventory"]},
	{"permission": "order_amounts:view", "fields": ["supplier_detail.phone"], "routes": ["GET /goods/{id}/"]},
	{"permission": "order_amounts:view", "fields": ["**.secret"]},
]}

test_a_mask_limited_to_modules_applies_only_to_their_answers if {
	res := {"kind": "item", "attributes": {"warehouse": ["HF"]}}
	inv := authz.decision with input as request(person(["warehouse_keeper"], hf_staff), "inventory", "view", res)
		with data.wms.masks as scoped_masks
	inv.obligations.mask == {"goods_cost", "**.secret"}
	keeper := person(["warehouse_keeper"], hf_staff)
	ord := authz.decision with input as request(keeper, "orders", "view", order("HF", "jd"))
		with data.wms.masks as scoped_masks
	ord.obligations.mask == {"**.secret"}
}

test_a_mask_limited_to_routes_applies_only_to_those_routes if {
	res := {"kind": "item", "attributes": {"warehouse": ["HF"]}}
	base := request(person(["warehouse_keeper"], hf_staff), "locations", "view", res)
	on_route := object.union(base, {"request": {"method": "GET", "route": "/goods/{id}/"}})
	d := authz.decision with input as on_route with data.wms.masks as scoped_masks
	d.obligations.mask == {"supplier_detail.phone", "**.secret"}
	elsewhere := object.union(base, {"request": {"method": "GET", "route": "/goods/"}})
	e := authz.decision with input as elsewhere with data.wms.masks as scoped_masks
	e.obligations.mask == {"**.secret"}
}

tenant_list(warehouse) := {"kind": "list", "attributes": {"warehouse": [warehouse]}}

test_a_list_pinned_to_a_tenant_needs_the_scope_to_cover_it if {
	keeper := person(["warehouse_keeper"], hf_staff)
	inside := authz.decision with input as request(keeper, "inventory", "view", tenant_list("HF"))
	inside.allow
	inside.obligations.row_filter.warehouse == ["*"]
	outside := authz.decision with input as request(keeper, "inventory", "view", tenant_list("SH"))
	not outside.allow
	"out_of_scope" in reason_codes(outside)
}

test_mask_kinds_follow_the_role if {
	picker := authz.decision with input as request(person(["picker"], hf_staff), "orders", "view", order("HF", "jd"))
	picker.obligations.mask_kinds.customer_id == {"kind": "hash"}
	not picker.obligations.mask_kinds.customer_phone
	not picker.obligations.mask_kinds.amount
	reviewer := authz.decision with input as request(person(["reviewer"], hf_staff), "orders", "view", order("HF", "jd"))
	reviewer.obligations.mask_kinds.customer_phone == {"kind": "partial", "keep_first": 3, "keep_last": 4}
	ops := authz.decision with input as request(person(["channel_ops"], everything), "orders", "view", order("HF", "jd"))
	ops.obligations.mask_kinds.amount == {"kind": "band", "width": 100}
	ops.obligations.mask_kinds["items[].price"] == {"kind": "band", "width": 100}
	not ops.obligations.mask_kinds.customer_phone
	packer := authz.decision with input as request(person(["packer"], hf_staff), "orders", "view", order("HF", "jd"))
	not "customer_phone" in packer.obligations.mask
	not packer.obligations.mask_kinds.customer_id
}

test_only_a_supervisor_may_reveal_a_masked_order_field_within_their_scope if {
	supervisor := person(["ops_supervisor"], everything)
	sup := authz.decision with input as request(supervisor, "orders", "reveal", order("HF", "jd"))
	sup.allow
	picker := authz.decision with input as request(person(["picker"], hf_staff), "orders", "reveal", order("HF", "jd"))
	not picker.allow
	hf_supervisor := person(["ops_supervisor"], hf_staff)
	elsewhere := authz.decision with input as request(hf_supervisor, "orders", "reveal", order("SH", "jd"))
	not elsewhere.allow
}

receive_in(warehouse) := {"module": "inventory", "verb": "receive", "attributes": {"warehouse": [warehouse]}}

transfer(subject, from, to) := {
	"subject": subject,
	"action": {"module": "inventory", "verb": "ship", "also": [receive_in(to)]},
	"resource": {"kind": "item", "id": "T1", "attributes": {"warehouse": [from]}},
}

test_a_transfer_needs_ship_in_the_source_and_receive_in_the_target if {
	both := {"warehouse": ["HF", "SH"], "channel": ["*"], "order_type": ["*"]}
	ok := authz.decision with input as transfer(person(["warehouse_keeper"], both), "HF", "SH")
	ok.allow
	out := authz.decision with input as transfer(person(["warehouse_keeper"], hf_staff), "HF", "SH")
	not out.allow
	out.reasons[0].code == "place_out_of_scope"
	contains(out.reasons[0].en, "inventory:receive is needed in warehouse SH")
	back := authz.decision with input as transfer(person(["warehouse_keeper"], hf_staff), "SH", "HF")
	back.reasons[0].code == "out_of_scope"
	nowhere := authz.decision with input as transfer(person(["warehouse_keeper"], both), "HF", "")
	not nowhere.allow
	picker := authz.decision with input as transfer(person(["picker"], both), "HF", "SH")
	picker.reasons[0].code == "missing_permission"
}
