# Decision reasons
#
#   Stable reason codes with zh-CN and en messages taken from data.wms.messages,
#   telling the person what they lack: a role, a permission or a scope.
package wms.authz

# METADATA
# title: Reasons
# description: >-
#   Every reason that applies, most telling first ("allowed" alone when allowed: the
#   only reason an allowed request has, so the others are not evaluated); reasons with
#   the same code in value order, so every evaluator (OPA, the Wasm build of this
#   policy) lists them alike.
reasons := [message("allowed", [], [])] if allow

else := [r | some code in reason_order; some r in sort([x | some x in reason_set; x.code == code])]

# METADATA
# title: Reason order
# description: Which reason is the main one when several apply.
reason_order := [
	"self_approval", "already_decided", "approver_in_reporting_line", "approver_role_required",
	"no_roles", "grant_outside_window", "unknown_module",
	"missing_permission", "not_found",
	"scope_unresolved", "no_scope", "aggregate_needs_full_scope", "out_of_scope", "place_out_of_scope",
	"step_up_required", "allowed",
]

# METADATA
# title: Reason set
# description: Every reason that applies.
# scope: document
reason_set contains message("allowed", [], []) if allow

reason_set contains violation if some violation in approval_violations

reason_set contains message("step_up_required", step_up_args["zh-CN"], step_up_args.en) if status == 401

reason_set contains message("no_roles", [], []) if {
	not allow
	count(known_roles) == 0
}

reason_set contains message("grant_outside_window", [role], [role]) if {
	not allow
	some role in input.subject.roles
	role_has_grants(role)
	not role in effective_roles
}

reason_set contains message("unknown_module", [input.action.module], [input.action.module]) if {
	not allow
	not module_def
}

reason_set contains message("missing_permission", [perm, holders], [perm, holders]) if {
	not allow
	module_def
	some perm in required
	not perm in granted
	holders := concat(", ", sort([role | some role, perms in role_permissions; perm in perms]))
}

reason_set contains message("no_scope", [dim_name(dim, "zh-CN")], [dim_name(dim, "en")]) if {
	not allow
	permitted
	input.resource.kind == "list"
	some dim in module_def.dimensions
	count(scope_values(dim)) == 0
}

reason_set contains message("not_found", [input.resource.id], [input.resource.id]) if {
	not allow
	permitted
	not resource_found
}

reason_set contains message("scope_unresolved", [dim_name(dim, "zh-CN")], [dim_name(dim, "en")]) if {
	not allow
	permitted
	input.resource.kind != "list"
	resource_found
	some dim in module_def.dimensions
	count(object.get(input.resource.attributes, dim, [])) == 0
}

reason_set contains msg if {
	not allow
	permitted
	input.resource.kind != "list"
	some dim in module_def.dimensions
	"*" in input.resource.attributes[dim]
	not covers(dim, "*")
	zh := dim_name(dim, "zh-CN")
	en := dim_name(dim, "en")
	msg := message("aggregate_needs_full_scope", [zh, zh, zh], [en, en, en])
}

reason_set contains msg if {
	not allow
	permitted
	some dim in module_def.dimensions
	some value in input.resource.attributes[dim] # lists too: a list pinned to a WMS tenant
	value != "*"
	not covers(dim, value)
	scope := scope_text(dim)
	msg := message("out_of_scope", [dim_name(dim, "zh-CN"), scope], [dim_name(dim, "en"), scope])
}

reason_set contains msg if {
	not allow
	permitted
	some extra in places_also_needed
	not place_in_scope(extra)
	some dim in modules[extra.module].dimensions
	some value in object.get(extra.attributes, dim, [""])
	not covers(dim, value)
	perm := concat(":", [extra.module, extra.verb])
	scope := scope_text(dim)
	zh := [perm, dim_name(dim, "zh-CN"), value, scope]
	msg := message("place_out_of_scope", zh, [perm, dim_name(dim, "en"), value, scope])
}

# METADATA
# title: Known roles
# description: The person's roles that the role matrix defines.
known_roles contains role if {
	some role in input.subject.roles
	role in role_names
}

# METADATA
# title: Message
# description: A reason object {code, zh-CN, en} from the message table.
message(code, zh_args, en_args) := {
	"code": code,
	"zh-CN": render(messages[code]["zh-CN"], zh_args),
	"en": render(messages[code].en, en_args),
}

# METADATA
# title: Render
# description: >-
#   A message template with its arguments (sprintf); a template without arguments or
#   "%" is its own text, so an allowed request formats nothing.
render(template, args) := template if {
	count(args) == 0
	not contains(template, "%")
} else := sprintf(template, args)

# METADATA
# title: Dimension name
# description: The display name of a scope dimension in one language.
dim_name(dim, lang) := data.wms.base.dimensions[dim][lang]

# METADATA
# title: Scope text
# description: The person's scope on a dimension as text, e.g. "[HF]" or "[]".
scope_text(dim) := concat("", ["[", concat(", ", sort(scope_values(dim))), "]"])

# METADATA
# title: Step-up message arguments
# description: Operation title (in the message's language), freshness in seconds and the ACR asked for.
step_up_args[lang] := [operation_title[lang], step_up_requirement.max_age_seconds, step_up_requirement.acr] if {
	some lang in ["zh-CN", "en"]
}
