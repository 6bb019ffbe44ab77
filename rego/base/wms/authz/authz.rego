# METADATA
# title: WMS gateway access decision (PDP)
# description: >-
#   Decides whether a person may perform module:verb on a WMS resource: RBAC over
#   the role matrix in data.wms.roles and ABAC over the data scope (warehouse,
#   channel, order type) of data.wms.modules. The proxy (PEP) queries
#   data.wms.authz.decision once per request. The input document is described in
#   rego/README.md and rego/base/schemas/input.json; anything missing or malformed is denied.
# authors:
#   - WMS gateway security team
# schemas:
#   - input: schema.input
package wms.authz

# METADATA
# title: Decision
# description: >-
#   The document the PEP enforces: allow, the HTTP status of a refusal, reasons
#   with stable codes and zh-CN/en messages, obligations (row filter, field mask),
#   the high-risk operation the request is (or null) and the policy revision for
#   the audit trail and the alerting service.
# entrypoint: true
decision := {
	"allow": allow,
	"status": status,
	"reasons": reasons,
	"obligations": obligations,
	"high_risk": operation,
	"policy_revision": policy_revision,
}

# METADATA
# title: Allow
# description: >-
#   Allowed only when every required permission is held, the resource is inside the
#   data scope, any step-up the operation needs is done, and (for approvals) the
#   four-eyes rules hold. High-risk requests are allowed with an approval obligation.
# scope: document
default allow := false

allow if {
	permitted
	in_scope
	not needs_step_up
	count(approval_violations) == 0
}

# METADATA
# title: Refusal status
# description: >-
#   403 by default; 404 when only the scope failed on an existence-sensitive
#   module, or when the resource does not exist; 401 when only a step-up is missing
#   (RFC 9470).
# scope: document
default status := 403

status := 200 if allow

status := 401 if {
	permitted
	in_scope
	needs_step_up
	count(approval_violations) == 0
}

status := 404 if {
	not allow
	permitted
	not in_scope
	module_def.existence_sensitive == true
}

status := 404 if {
	not allow
	permitted
	not resource_found
}

# METADATA
# title: Policy revision
# description: Revision of the active policy bundle (its manifest), recorded in every audit entry.
# scope: document
default policy_revision := "unversioned"

policy_revision := data.system.bundles.wms.manifest.revision

# METADATA
# title: Module definition
# description: The policy data of the requested module; undefined for unknown modules.
module_def := modules[input.action.module]

# METADATA
# title: Required permissions
# description: The primary module:verb plus any extra ones the route map derived (input.action.also).
# scope: document
required contains concat(":", [input.action.module, input.action.verb])

required contains concat(":", [p.module, p.verb]) if some p in input.action.also

# METADATA
# title: Granted permissions
# description: >-
#   Union of the permissions of every role that counts now (effective_roles), in
#   either layer (as role_permissions, read for the person's roles only).
# scope: document
granted contains perm if {
	some role in effective_roles
	some perm in object.get(site_roles, [role, "permissions"], [])
}

granted contains perm if {
	some role in effective_roles
	some perm in object.get(data.wms.base.roles, [role, "permissions"], [])
}

# METADATA
# title: Effective roles
# description: >-
#   The person's roles that count now. A role that came with temporary grants
#   (input.subject.grants) counts only inside one of their windows; after the end
#   it gives nothing, even before the sweeper removes it from Keycloak.
# scope: document
effective_roles contains role if {
	some role in input.subject.roles
	not role_has_grants(role)
}

effective_roles contains role if {
	some role in input.subject.roles
	some grant in input.subject.grants
	grant.role == role
	now_seconds >= grant.valid_from
	now_seconds < grant.valid_until
}

# METADATA
# title: Role has grants
# description: The role came with a temporary grant (so its window applies).
role_has_grants(role) if {
	some grant in input.subject.grants
	grant.role == role
}

# METADATA
# title: Now
# description: The request time in seconds since the epoch (UTC).
now_seconds := input.request.time_ms / 1000

# METADATA
# title: Permitted
# description: The module is known and every required permission is granted.
# scope: document
default permitted := false

permitted if {
	module_def
	every perm in required {
		perm in granted
	}
}

# METADATA
# title: Resource found
# description: False only when a lookup showed the resource does not exist (nothing is forwarded, nothing leaks).
# scope: document
default resource_found := true

resource_found := false if input.resource.found == false

# METADATA
# title: Scope values
# description: The person's scope on one dimension as a set; empty when absent (absent means nothing, never all).
scope_values(dim) := {v | some v in input.subject.scope[dim]}

# METADATA
# title: Covers
# description: >-
#   True when the person's scope on dim includes value. A "*" scope covers
#   everything; the value "*" (all, for reports) needs a "*" scope.
# scope: document
covers(dim, _) if "*" in input.subject.scope[dim]

covers(dim, value) if {
	value != "*"
	value in input.subject.scope[dim]
}

# METADATA
# title: Dimension in scope
# description: The resource carries at least one value on dim and the person's scope covers every one.
dimension_in_scope(dim) if {
	values := input.resource.attributes[dim]
	count(values) > 0
	every value in values {
		covers(dim, value)
	}
}

# METADATA
# title: In scope
# description: >-
#   Single, bulk and aggregate resources must lie inside the scope on every
#   dimension of the module; lists need some scope on every dimension and are
#   narrowed by the row_filter obligation, except on a dimension the list is
#   pinned to (a WMS tenant per warehouse answers only for that warehouse), which
#   the scope must cover.
# scope: document
default in_scope := false

in_scope if {
	input.resource.kind == "list"
	every dim in module_def.dimensions {
		tenant_or_scope_covers(dim)
	}
}

in_scope if {
	input.resource.kind != "list"
	resource_found
	every dim in module_def.dimensions {
		dimension_in_scope(dim)
	}
	every extra in places_also_needed {
		place_in_scope(extra)
	}
}

# METADATA
# title: Places also needed
# description: >-
#   Extra permissions over another place than the resource (input.action.also entries
#   with attributes: a transfer's receive right in the target warehouse).
# scope: document
places_also_needed contains extra if {
	some extra in input.action.also
	extra.attributes
}

# METADATA
# title: Place in scope
# description: >-
#   The place of an extra permission names a value on every dimension of its module
#   and the person's scope covers each (an unknown module is never in scope).
place_in_scope(extra) if {
	dimensions := modules[extra.module].dimensions
	every dim in dimensions {
		count(object.get(extra.attributes, dim, [])) > 0
		every value in extra.attributes[dim] {
			covers(dim, value)
		}
	}
}

# METADATA
# title: List dimension in scope
# description: >-
#   A list not pinned on dim needs some scope there (its rows are narrowed); a list
#   pinned on dim (input.resource.attributes[dim], the WMS tenant) needs the scope to
#   cover the pinned value.
# scope: document
tenant_or_scope_covers(dim) if {
	not pinned_dimension(dim)
	count(scope_values(dim)) > 0
}

tenant_or_scope_covers(dim) if {
	pinned_dimension(dim)
	dimension_in_scope(dim)
}

# METADATA
# title: List pinned
# description: The list request names values on dim (the WMS tenant it runs in).
pinned_dimension(dim) if count(input.resource.attributes[dim]) > 0
