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
	why := object.get(rule, "why", {})
	conflict := {
		"roles": sort(rule.roles),
		"zh-CN": object.get(why, "zh-CN", "职责冲突"),
		"en": object.get(why, "en", "conflicting duties"),
	}
}

# METADATA
# title: Separation-of-duties rules
# description: The deployment's conflicting role sets (data.wms.sod.conflicts), empty when none.
# scope: document
default sod_rules := []

sod_rules := data.wms.sod.conflicts
