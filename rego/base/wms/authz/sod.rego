# Separation of duties: role pairs (or sets) one person may not hold together, the
# toxic combinations of data.wms.sod (a deployment's). The gateway asks role_conflicts
# before it gives anyone a role or a temporary grant, and again when an approved change
# runs; a conflict is refused with 409 role_conflict.
package wms.authz

# METADATA
# title: Role conflicts
# description: >-
#   The conflicting role sets that input.subject.roles holds all of, each with its roles
#   (sorted) and why (zh-CN, en); empty when there are none.
# scope: document
role_conflicts contains conflict if {
	some rule in sod_rules
	every role in rule.roles {
		role in input.subject.roles
	}
	conflict := {"roles": sort(rule.roles), "zh-CN": rule.why["zh-CN"], "en": rule.why.en}
}

# METADATA
# title: Separation-of-duties rules
# description: The deployment's conflicting role sets (data.wms.sod.conflicts), empty when none.
# scope: document
default sod_rules := []

sod_rules := data.wms.sod.conflicts
