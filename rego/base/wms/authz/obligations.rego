# Obligations
#
#   What the PEP must do: narrow lists to the person's scope (row_filter), mask
#   fields the person may not see (mask), hold a high-risk request for four-eyes
#   approval (approval), count, watermark and justify exports (export), or
#   challenge for step-up MFA (step_up, with status 401).
#   The PEP refuses a decision that carries an obligation it does not know.
package wms.authz

# METADATA
# title: Obligations
# description: >-
#   row_filter (dimension to allowed values, "*" for all), mask (field paths),
#   mask_kinds (field path to how it is masked, for fields not simply redacted),
#   step_up (acr_values, max_age; or null), approval (operation, approvals, expires_seconds; or null),
#   export (reason_over_rows, approve_over_rows, refuse_over_rows, approval, unmasked_pii; or null)
obligations := {
	"row_filter": row_filter,
	"mask": mask,
	"mask_kinds": mask_kinds,
	"step_up": step_up_obligation,
	"approval": approval_obligation,
	"export": export_obligation,
}

# METADATA
# title: Export obligation
# description: >-
#   An allowed export: the PEP counts its rows, refuses it above refuse_over_rows, holds
#   it for four-eyes approval (approval: operation, approvals, expires_seconds) above
#   approve_over_rows, asks for a reason above reason_over_rows or when it carries
#   unmasked_pii (fields masked for people without a permission this person holds), and
#   watermarks every row.
# scope: document
default export_obligation := null

export_obligation := {
	"reason_over_rows": export_thresholds.reason_over_rows,
	"approve_over_rows": export_thresholds.approve_over_rows,
	"refuse_over_rows": export_thresholds.refuse_over_rows,
	"approval": export_approval,
	"unmasked_pii": sort([field | some field in unmasked_pii]),
} if {
	allow
	input.action.verb == "export"
}

# METADATA
# title: Export approval
# description: >-
#   The approval a large export needs (the gateway's rule; expires_seconds in seconds),
#   or null: the PEP then refuses what it would have held.
# scope: document
default export_approval := null

export_approval := {
	"operation": export_approval_rule.operation,
	"approvals": export_approval_rule.approvals,
	"expires_seconds": export_approval_rule.expires_hours * 3600,
}

# METADATA
# title: Unmasked personal data
# description: Fields a mask rule hides from others that this person may see in this answer.
# scope: document
unmasked_pii contains field if {
	some rules in site_masks
	some rule in rules
	rule.permission in granted
	mask_applies(rule)
	some field in rule.fields
}

# METADATA
# title: Step-up obligation
# description: What to ask Keycloak for (RFC 9470 acr_values, max_age in seconds) when only MFA is missing.
# scope: document
default step_up_obligation := null

step_up_obligation := challenge if {
	status == 401
	challenge := {"acr_values": step_up_requirement.acr, "max_age": challenge_max_age}
}

# METADATA
# title: Challenge max_age
# description: >-
#   The max_age the challenge asks for (seconds): the requirement's, or 0 when an alert
#   demands the step-up (the identity provider must authenticate anew: a login from before
#   the alert, however fresh, does not do).
# scope: document
default challenge_max_age := 0

challenge_max_age := step_up_requirement.max_age_seconds if not demanded_step_up

# METADATA
# title: Approval obligation
# description: The allowed request is high-risk; hold it for four-eyes approval.
# scope: document
default approval_obligation := null

approval_obligation := held if {
	allow
	held := {
		"operation": operation,
		"approvals": approval_rule.approvals,
		"expires_seconds": approval_rule.expires_hours * 3600,
	}
}

# METADATA
# title: Row filter
# description: >-
#   For list requests, the values each row must carry on every dimension of the
#   module; ["*"] on a dimension the list is pinned to (the WMS answers only for the
#   pinned value, which in_scope checked against the scope).
# scope: document
row_filter[dim] := filter_values(dim) if {
	input.resource.kind == "list"
	some dim in module_def.dimensions
	not pinned_dimension(dim)
}

row_filter[dim] := ["*"] if {
	input.resource.kind == "list"
	some dim in module_def.dimensions
	pinned_dimension(dim)
}

# METADATA
# title: Filter values
# description: '["*"] when the person sees everything on dim, else their sorted scope.'
filter_values(dim) := ["*"] if {
	"*" in scope_values(dim)
} else := sort(scope_values(dim))

# METADATA
# title: Mask
# description: >-
#   Field paths to mask because the person lacks the permission that reveals them.
#   A rule without modules or routes applies to every answer, whatever the request's
#   module: an answer that embeds an order (a review, a pick confirmation) is masked
#   like the order. A rule with modules or routes applies only to those answers.
mask contains field if {
	some rules in site_masks
	some rule in rules
	not rule.permission in granted
	mask_applies(rule)
	some field in rule.fields
}

# METADATA
# title: Mask kinds
# description: >-
#   How each masked field is masked, for fields whose kind is not redact ("***"; numbers
#   null): field path -> {kind, keep_first, keep_last, width}. When several rules mask a
#   field, the strongest kind wins (null, redact, hash, band, month, partial).
# scope: document
mask_kinds[field] := spec if {
	some field in mask
	candidates := {[mask_kind_rank(s.kind), s] |
		some rules in site_masks
		some rule in rules
		not rule.permission in granted
		mask_applies(rule)
		field in rule.fields
		s := person_mask_spec(rule, granted)
	}
	spec := max(candidates)[1]
	spec.kind != "redact"
}

# METADATA
# title: Mask kind rank
# description: How much a kind hides, the stronger the higher; undefined for an unknown kind.
mask_kind_rank(kind) := {"partial": 1, "month": 2, "band": 3, "hash": 4, "redact": 5, "null": 6}[kind]

# METADATA
# title: Person's mask spec
# description: >-
#   The kind a rule masks with for a person holding the permissions held: the rule's kind
#   (redact when it names none), or, when they hold a permission of the rule's kind_with,
#   the strongest kind given there (a role may see a field partly: a reviewer the phone's
#   last digits).
person_mask_spec(rule, held) := max({[mask_kind_rank(s.kind), s] |
	some permission, given in rule.kind_with
	permission in held
	s := known_mask_spec(given)
})[1] if {
	some permission, _ in rule.kind_with
	permission in held
} else := known_mask_spec(rule)

# METADATA
# title: Known mask spec
# description: >-
#   {kind, keep_first, keep_last, width} of a rule or a kind_with entry; redact when it
#   names a kind the gateway does not know (fail closed).
known_mask_spec(given) := spec if {
	spec := object.union({"kind": "redact"}, object.filter(given, ["kind", "keep_first", "keep_last", "width"]))
	mask_kind_rank(spec.kind)
} else := {"kind": "redact"}

# METADATA
# title: Mask applies
# description: >-
#   A mask rule applies to every answer unless it names modules (the request's
#   module) or routes ("METHOD /template" of the route map) it is limited to.
# scope: document
mask_applies(rule) if {
	not rule.modules
	not rule.routes
}

mask_applies(rule) if input.action.module in rule.modules

mask_applies(rule) if concat(" ", [input.request.method, input.request.route]) in rule.routes
