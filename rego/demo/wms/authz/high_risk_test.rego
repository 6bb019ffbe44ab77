package wms.authz_test

import data.wms.authz

now_ms := 1764400000000

hf := {"warehouse": ["HF"], "channel": ["*"], "order_type": ["*"]}

all_scope := {"warehouse": ["*"], "channel": ["*"], "order_type": ["*"]}

person_at(id, roles, scope, acr, auth_age_seconds) := {
	"id": id, "username": id, "roles": roles, "scope": scope,
	"acr": acr, "auth_time": (now_ms / 1000) - auth_age_seconds,
}

hf_item := {"kind": "item", "id": "r", "attributes": {"warehouse": ["HF"], "channel": ["jd"], "order_type": ["b2c"]}}

ask(subject, module, verb, resource) := {
	"subject": subject, "action": {"module": module, "verb": verb},
	"resource": resource, "request": {"time_ms": now_ms},
}

approve(subject, module, resource, op, requester, deciders) := object.union(
	ask(subject, module, "approve", resource),
	{"approval": {"id": "a1", "operation": op, "requester_id": requester, "deciders": deciders, "status": "pending"}},
)

codes(d) := [r.code | some r in d.reasons]

keeper_pwd := person_at("k", ["warehouse_keeper"], hf, "pwd", 10)

keeper_mfa := person_at("k", ["warehouse_keeper"], hf, "mfa", 10)

supervisor_mfa := person_at("s", ["ops_supervisor"], all_scope, "mfa", 60)

test_inventory_change_with_a_password_token_is_a_step_up_challenge if {
	d := authz.decision with input as ask(keeper_pwd, "inventory", "update", hf_item)
	not d.allow
	d.status == 401
	d.obligations.step_up == {"acr_values": "mfa", "max_age": 600}
	codes(d) == ["step_up_required"]
	contains(d.reasons[0].en, "change an inventory quantity")
}

test_inventory_change_after_fresh_mfa_is_held_for_approval if {
	d := authz.decision with input as ask(keeper_mfa, "inventory", "update", hf_item)
	d.allow
	d.obligations.approval == {"operation": "inventory_change", "approvals": 1, "expires_seconds": 86400}
	d.obligations.step_up == null
}

test_stale_mfa_is_not_enough if {
	subject := person_at("k", ["warehouse_keeper"], hf, "mfa", 3600)
	d := authz.decision with input as ask(subject, "inventory", "update", hf_item)
	d.status == 401
}

test_acr_as_loa_number_counts if {
	subject := person_at("k", ["warehouse_keeper"], hf, "2", 10)
	d := authz.decision with input as ask(subject, "inventory", "update", hf_item)
	d.allow
}

test_missing_auth_time_never_satisfies_step_up if {
	subject := object.remove(person_at("k", ["warehouse_keeper"], hf, "mfa", 0), ["auth_time"])
	d := authz.decision with input as ask(subject, "inventory", "update", hf_item)
	d.status == 401
}

test_batch_change_needs_approval_but_no_step_up if {
	d := authz.decision with input as ask(keeper_pwd, "batches", "update", hf_item)
	d.allow
	d.obligations.approval.operation == "batch_change"
}

test_step_up_is_not_offered_to_someone_who_would_be_denied_anyway if {
	d := authz.decision with input as ask(person_at("p", ["picker"], hf, "pwd", 10), "orders", "delete", hf_item)
	d.status == 403
	d.obligations.step_up == null
	codes(d) == ["missing_permission"]
}

test_out_of_scope_customs_change_is_404_not_a_step_up if {
	sz := {"kind": "item", "id": "c", "attributes": {"warehouse": ["SZ"], "channel": ["amazon"]}}
	d := authz.decision with input as ask(keeper_pwd, "customs", "update", sz)
	d.status == 404
}

test_bulk_status_change_needs_approval_and_single_update_does_not if {
	bulk := object.union(hf_item, {"kind": "bulk"})
	d := authz.decision with input as ask(keeper_pwd, "orders", "update", bulk)
	d.obligations.approval.operation == "bulk_status_change"
	single := authz.decision with input as ask(keeper_pwd, "orders", "update", hf_item)
	single.allow
	single.obligations.approval == null
}

test_supervisor_approves_with_fresh_mfa if {
	inp := approve(supervisor_mfa, "inventory", hf_item, "inventory_change", "k", [])
	d := authz.decision with input as inp
	d.allow
	d.obligations.approval == null
}

test_approver_without_mfa_is_challenged if {
	inp := approve(person_at("s", ["ops_supervisor"], all_scope, "pwd", 60), "batches", hf_item, "batch_change", "k", [])
	d := authz.decision with input as inp
	d.status == 401
	d.obligations.step_up == {"acr_values": "mfa", "max_age": 900}
	contains(d.reasons[0].en, "change a batch's lot or expiry")
}

test_requester_cannot_approve_own_request if {
	inp := approve(person_at("k", ["warehouse_keeper"], hf, "mfa", 60), "batches", hf_item, "batch_change", "k", [])
	d := authz.decision with input as inp
	d.status == 403
	codes(d)[0] == "self_approval"
}

test_nobody_decides_twice if {
	inp := approve(supervisor_mfa, "orders", hf_item, "order_delete", "x", ["s"])
	d := authz.decision with input as inp
	codes(d) == ["already_decided"]
}

test_approver_must_cover_the_resource_scope if {
	sh := {"warehouse": ["SH"], "channel": ["*"], "order_type": ["*"]}
	inp := approve(person_at("ksh", ["warehouse_keeper"], sh, "mfa", 60), "orders", hf_item, "order_delete", "s", [])
	d := authz.decision with input as inp
	d.status == 403
	codes(d) == ["out_of_scope"]
}

test_decision_names_the_high_risk_operation if {
	d := authz.decision with input as ask(keeper_mfa, "inventory", "update", hf_item)
	d.high_risk == "inventory_change"
}

test_decision_names_the_operation_even_when_refused if {
	picker := person_at("p", ["picker"], hf, "pwd", 10)
	d := authz.decision with input as ask(picker, "orders", "delete", hf_item)
	not d.allow
	d.high_risk == "order_delete"
}

test_an_ordinary_request_has_no_high_risk_operation if {
	d := authz.decision with input as ask(keeper_pwd, "inventory", "view", hf_item)
	d.high_risk == null
}

status_change(current, wanted) := object.union(
	ask(keeper_pwd, "orders", "update", object.union(hf_item, {"state": {"status": current}})),
	{"action": {"module": "orders", "verb": "update", "changes": {"status": wanted}}},
)

test_moving_a_shipped_order_back_is_held_for_four_eyes if {
	d := authz.decision with input as status_change("shipped", "pending_pick")
	d.allow
	d.obligations.approval == {"operation": "order_status_rollback", "approvals": 1, "expires_seconds": 86400}
	d.high_risk == "order_status_rollback"
}

test_moving_an_order_forward_or_out_of_the_sequence_is_not_held if {
	forward := authz.decision with input as status_change("packed", "shipped")
	forward.allow
	forward.obligations.approval == null
	exception := authz.decision with input as status_change("picking", "exception")
	exception.allow
	exception.obligations.approval == null
	back_from_exception := authz.decision with input as status_change("exception", "pending_pick")
	back_from_exception.obligations.approval == null
}

test_a_shipped_order_cannot_detour_through_exception if {
	d := authz.decision with input as status_change("shipped", "exception")
	d.obligations.approval.operation == "order_status_rollback"
}

test_a_write_without_a_known_state_is_not_a_rollback if {
	d := authz.decision with input as ask(keeper_pwd, "orders", "update", hf_item)
	d.allow
	d.obligations.approval == null
}

test_a_supervisor_approves_a_status_rollback if {
	resource := object.union(hf_item, {"state": {"status": "shipped"}})
	asked := approve(supervisor_mfa, "orders", resource, "order_status_rollback", "k", [])
	d := authz.decision with input as asked
	d.allow
	title := authz.operation_title with input as asked
	title.en == "move an order's status back"
}

adjust(subject, qty, unit_cost) := object.union(
	ask(subject, "inventory", "update", object.union(hf_item, {"state": {"unit_cost": unit_cost}})),
	{"action": {"quantities": {"qty": qty}}},
)

test_a_small_inventory_adjustment_needs_step_up_but_no_approval if {
	d := authz.decision with input as adjust(keeper_mfa, -5, "20.00")
	d.allow
	d.obligations.approval == null
	d.high_risk == "inventory_change"
	pwd := authz.decision with input as adjust(keeper_pwd, -5, "20.00")
	pwd.status == 401
}

test_an_inventory_adjustment_above_the_quantity_or_value_is_held if {
	many := authz.decision with input as adjust(keeper_mfa, -150, "1.00")
	many.obligations.approval.operation == "inventory_change"
	dear := authz.decision with input as adjust(keeper_mfa, 50, "200.00")
	dear.obligations.approval.operation == "inventory_change"
	edge := authz.decision with input as adjust(keeper_mfa, 100, "50")
	edge.obligations.approval == null
}

test_an_unreadable_quantity_or_unit_cost_is_held if {
	no_cost := authz.decision with input as adjust(keeper_mfa, 1, "n/a")
	no_cost.obligations.approval.operation == "inventory_change"
	text_qty := authz.decision with input as adjust(keeper_mfa, "1", "1.00")
	text_qty.obligations.approval.operation == "inventory_change"
	inp := object.union(ask(keeper_mfa, "inventory", "update", hf_item), {"action": {"quantities": {"qty": 1}}})
	no_state := authz.decision with input as inp
	no_state.obligations.approval.operation == "inventory_change"
}

# keeper_mfa logged in 10 s before now_ms; an alert 60 s before now_ms predates that login,
# one 5 s before now_ms came after it
flagged(subject, alert_age_seconds) := object.union(subject, {"alert_since_ms": now_ms - (alert_age_seconds * 1000)})

test_an_alert_makes_the_next_high_risk_request_step_up_until_an_mfa_login_after_it if {
	held := authz.decision with input as ask(flagged(keeper_mfa, 5), "inventory", "update", hf_item)
	held.status == 401
	held.obligations.step_up == {"acr_values": "mfa", "max_age": 0} # authenticate anew
	after := authz.decision with input as ask(flagged(keeper_mfa, 60), "inventory", "update", hf_item)
	after.allow

	# an operation without a step-up of its own asks for the alert's; a password login never clears it
	batch := authz.decision with input as ask(flagged(keeper_pwd, 60), "batches", "update", hf_item)
	batch.status == 401
	batch.obligations.step_up == {"acr_values": "mfa", "max_age": 0}
	contains(batch.reasons[0].en, "change a batch")

	# approvals too; ordinary requests are not affected
	ballot := approve(flagged(supervisor_mfa, 5), "inventory", hf_item, "inventory_change", "k", [])
	vote := authz.decision with input as ballot
	vote.status == 401
	view := authz.decision with input as ask(flagged(keeper_pwd, 5), "inventory", "view", hf_item)
	view.allow
}

reporting(ballot, reports_to) := object.union(
	ballot,
	{"approval": {"requester_username": "k", "requester_reports_to": reports_to}},
)

test_a_manager_may_not_approve_their_reports_batch_change if {
	ballot := approve(supervisor_mfa, "batches", hf_item, "batch_change", "k", [])
	boss := authz.decision with input as reporting(ballot, ["s"])
	not boss.allow
	boss.reasons[0].code == "approver_in_reporting_line"
	contains(boss.reasons[0]["zh-CN"], "k")
	outside := authz.decision with input as reporting(ballot, ["someone-else"])
	outside.allow

	# the other way round: the requester is the approver's manager
	report := object.union(reporting(ballot, []), {"subject": {"reports_to": ["k"]}})
	up := authz.decision with input as report
	up.reasons[0].code == "approver_in_reporting_line"

	# an operation without the predicate does not look at the line
	inventory := approve(supervisor_mfa, "inventory", hf_item, "inventory_change", "k", [])
	free := authz.decision with input as reporting(inventory, ["s"])
	free.allow
}

test_an_approver_role_predicate_names_the_roles if {
	ops := {"role_gated": {
		"title": {"zh-CN": "x", "en": "x"}, "when": {"module": "batches", "verbs": ["update"]},
		"approval": {"approvals": 2, "expires_hours": 1, "approvers": {"roles": ["finance", "sysadmin"]}},
	}}
	d := authz.decision with input as approve(supervisor_mfa, "batches", hf_item, "role_gated", "k", [])
		with data.wms.high_risk as {"operations": ops}
	d.reasons[0].code == "approver_role_required"
	contains(d.reasons[0].en, "finance, sysadmin")
}

test_the_reporting_line_ignores_letter_case_and_a_negative_cost_is_no_excuse if {
	ballot := approve(supervisor_mfa, "batches", hf_item, "batch_change", "k", [])
	boss := authz.decision with input as reporting(ballot, ["S"])
	boss.reasons[0].code == "approver_in_reporting_line"
	dear := authz.decision with input as adjust(keeper_mfa, 50, "-200.00")
	dear.obligations.approval.operation == "inventory_change"
}
