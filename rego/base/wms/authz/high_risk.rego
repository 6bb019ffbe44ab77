# High-risk operations: step-up MFA (RFC 9470) and four-eyes approval, from
# data.wms.high_risk (domain.md "High-risk operations").
package wms.authz

# METADATA
# title: Matched operations
# description: The high-risk operations (high_risk_operations) the request is.
matched_operations contains id if {
	input.action.verb != "approve"
	some id, op in high_risk_operations
	op.when.module == input.action.module
	input.action.verb in op.when.verbs
	kind_matches(op.when)
	transition_matches(op.when)
}

# METADATA
# title: Kind matches
# description: An operation without kinds matches every resource kind.
# scope: document
kind_matches(when) if not when.kinds

kind_matches(when) if input.resource.kind in when.kinds

# METADATA
# title: Transition matches
# description: >-
#   An operation without a transition condition matches any request; one with
#   "transition: backward" only a write that moves a state field back (backward_change).
# scope: document
transition_matches(when) if not when.transition

transition_matches(when) if {
	when.transition == "backward"
	backward_change
}

# METADATA
# title: Backward change
# description: >-
#   The write moves a state field of the resource back in its module's sequence
#   (data.wms.transitions[module][field]): the current value (input.resource.state, read
#   fresh) and the requested one (input.action.changes) are both in it, the requested
#   earlier; or the current value is the sequence's last (settled: shipped) and the write
#   changes it at all (to a state outside the sequence too: no detour via exception).
# scope: document
default backward_change := false

backward_change if {
	some name, wanted in input.action.changes
	sequence := site_transitions[input.action.module][name]
	some from, current in sequence
	current == input.resource.state[name]
	some to, target in sequence
	target == wanted
	to < from
}

backward_change if {
	some name, wanted in input.action.changes
	sequence := site_transitions[input.action.module][name]
	input.resource.state[name] == sequence[count(sequence) - 1]
	wanted != input.resource.state[name]
}

# METADATA
# title: Operation
# description: >-
#   The high-risk operation a request is, or null: the gateway's own when one of them
#   matches (a deployment's cannot displace it), else the first by name. The decision
#   carries it so the PEP records it for the alerting service.
# scope: document
default operation := null

operation := sort(base_matched)[0] if count(base_matched) > 0

operation := sort(matched_operations)[0] if count(base_matched) == 0

# METADATA
# title: Matched gateway operations
# description: The gateway's own high-risk operations the request is.
base_matched contains id if {
	some id in matched_operations
	data.wms.base.high_risk.operations[id]
}

# METADATA
# title: Operation title
# description: What the step-up message calls the operation (the one being approved, for approvals).
# scope: document
default operation_title := {"zh-CN": "高风险操作", "en": "high-risk operation"}

operation_title := high_risk_operations[operation].title

operation_title := high_risk_operations[input.approval.operation].title if input.action.verb == "approve"

operation_title := export_approval_rule.title if {
	input.action.verb == "approve"
	input.approval.operation == export_approval_rule.operation
}

# METADATA
# title: Step-up requirement
# description: The ACR and freshness (max_age_seconds) an operation or an approval needs.
# scope: document
step_up_requirement := high_risk_operations[operation].step_up

step_up_requirement := approver_step_up if input.action.verb == "approve"

step_up_requirement := alert_step_up if {
	demanded_step_up
	input.action.verb != "approve"
	not high_risk_operations[operation].step_up
}

# METADATA
# title: Step-up demanded by an alert
# description: >-
#   An unresolved security alert flagged the person (input.subject.alert_since_ms: when it
#   opened, from the alerting service) and the request is high-risk or an approval: it
#   needs an MFA login made at or after the alert, whatever else the token shows.
# scope: document
default demanded_step_up := false

demanded_step_up if {
	high_risk_operations[operation]
	not stepped_up_since_alert
}

demanded_step_up if {
	input.action.verb == "approve"
	not stepped_up_since_alert
}

# METADATA
# title: Stepped up since the alert
# description: >-
#   No alert flags the person, or their token shows the alert step-up's ACR from a login
#   at or after the alert opened (auth_time in seconds, the alert in ms: the second it
#   opened counts, so the MFA login that opened it is not asked again).
# scope: document
default stepped_up_since_alert := false

stepped_up_since_alert if not input.subject.alert_since_ms

stepped_up_since_alert if {
	acr_levels[input.subject.acr] >= acr_levels[alert_step_up.acr]
	input.subject.auth_time >= floor(input.subject.alert_since_ms / 1000)
}

# METADATA
# title: Step-up satisfied
# description: >-
#   The token's acr is at least the required level and its auth_time is no older
#   than max_age_seconds at the request time. Only token claims count, never
#   request parameters.
step_up_satisfied if {
	acr_levels[input.subject.acr] >= acr_levels[step_up_requirement.acr]
	age_seconds := (input.request.time_ms / 1000) - input.subject.auth_time
	age_seconds <= step_up_requirement.max_age_seconds
}

# METADATA
# title: Approval rule
# description: >-
#   How many approvals the operation needs and how long a request may wait (hours); an
#   approval with only_over applies only to a write above its magnitude (over_magnitude).
approval_rule := rule if {
	rule := high_risk_operations[operation].approval
	approval_applies(rule)
}

# METADATA
# title: Approval applies
# description: An approval without only_over always applies; with it, above the magnitude.
# scope: document
approval_applies(rule) if not rule.only_over

approval_applies(rule) if over_magnitude(rule.only_over)

# METADATA
# title: Over magnitude
# description: >-
#   The write's quantity (input.action.quantities[m.quantity], a number from the request)
#   is above m.above in absolute value, or its value (quantity times the number in
#   input.resource.state[m.unit_value], read fresh from the WMS) is above m.value_above.
#   A quantity or unit value that cannot be read counts as over (fail closed).
# scope: document
over_magnitude(m) if not readable_quantity(m)

over_magnitude(m) if abs(input.action.quantities[m.quantity]) > m.above

over_magnitude(m) if {
	m.value_above
	not readable_unit_value(m)
}

over_magnitude(m) if {
	m.value_above
	readable_unit_value(m)
	unit := abs(to_number(input.resource.state[m.unit_value])) # a negative cost is no excuse
	abs(input.action.quantities[m.quantity]) * unit > m.value_above
}

# METADATA
# title: Readable quantity
# description: The write carries the quantity m.quantity as a number.
readable_quantity(m) if is_number(input.action.quantities[m.quantity])

# METADATA
# title: Readable unit value
# description: The resource's state m.unit_value reads as a plain decimal number (12, -3.5).
readable_unit_value(m) if regex.match(`^-?[0-9]+(\.[0-9]+)?$`, input.resource.state[m.unit_value])

# METADATA
# title: Needs step-up
# description: The operation needs a step-up the token does not show.
# scope: document
default needs_step_up := false

needs_step_up if {
	step_up_requirement
	not step_up_satisfied
}

needs_step_up if demanded_step_up

# METADATA
# title: Approval violations
# description: Four-eyes rules for an approver (input.approval describes the request being decided).
# scope: document
approval_violations contains message("self_approval", [], []) if {
	input.action.verb == "approve"
	input.approval.requester_id == input.subject.id
}

approval_violations contains message("already_decided", [], []) if {
	input.action.verb == "approve"
	input.subject.id in input.approval.deciders
}

approval_violations contains message("approver_in_reporting_line", [requester], [requester]) if {
	input.action.verb == "approve"
	approver_predicates.not_reporting_line == true
	requester := object.get(input.approval, "requester_username", "")
	in_reporting_line(requester)
}

approval_violations contains message("approver_role_required", [roles], [roles]) if {
	input.action.verb == "approve"
	count(object.get(approver_predicates, "roles", [])) > 0
	count({role | some role in effective_roles; role in approver_predicates.roles}) == 0
	roles := concat(", ", sort(approver_predicates.roles))
}

# METADATA
# title: Approver predicates
# description: >-
#   Who may approve the operation being decided beyond <module>:approve, its scope and
#   four-eyes (approval.approvers of the operation): roles (one of them), not_reporting_line
#   (never the requester's manager or report).
# scope: document
default approver_predicates := {}

approver_predicates := high_risk_operations[input.approval.operation].approval.approvers

# METADATA
# title: In the reporting line
# description: >-
#   The approver is someone the requester reports to (input.approval.requester_reports_to,
#   kept from the requester's token), or the requester is someone the approver reports to;
#   names are compared in lower case.
# scope: document
in_reporting_line(_) if lower(input.subject.username) in lowered(object.get(input.approval, "requester_reports_to", []))

in_reporting_line(requester) if lower(requester) in lowered(object.get(input.subject, "reports_to", []))

# METADATA
# title: Lowered
# description: The names in lower case (Keycloak keeps usernames in lower case; an attribute may not).
lowered(names) := {lower(name) | some name in names}
