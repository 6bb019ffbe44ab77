# Policy data in two layers: the gateway's own (data.wms.base: its modules, the
# sysadmin's gateway permissions, its high-risk operation, messages, dimensions) and a
# deployment's (data.wms.roles, modules, masks, high_risk, messages: what a site
# writes for its WMS). The rules read only the merged documents below.
package wms.authz

# METADATA
# title: Site modules
# description: The deployment's modules (data.wms.modules), empty when it defines none.
# scope: document
default site_modules := {}

site_modules := data.wms.modules

# METADATA
# title: Modules
# description: Every module, the gateway's own and the deployment's (the deployment cannot redefine the gateway's).
modules := object.union(site_modules, data.wms.base.modules)

# METADATA
# title: Site roles
# description: The deployment's roles (data.wms.roles), empty when it defines none.
# scope: document
default site_roles := {}

site_roles := data.wms.roles

# METADATA
# title: Role names
# description: Every role either layer defines.
# scope: document
role_names contains name if some name, _ in site_roles

role_names contains name if some name, _ in data.wms.base.roles

# METADATA
# title: Role permissions
# description: A role's permissions, the union of both layers.
role_permissions[name] := perms if {
	some name in role_names
	perms := {p | some p in object.get(site_roles, [name, "permissions"], [])} | {p |
		some p in object.get(data.wms.base.roles, [name, "permissions"], [])
	}
}

# METADATA
# title: Site high-risk table
# description: The deployment's high-risk data (data.wms.high_risk), empty when it defines none.
# scope: document
default site_high_risk := {}

site_high_risk := data.wms.high_risk

# METADATA
# title: Site high-risk operations
# description: >-
#   The deployment's operations, except any on a module of the gateway's own (a
#   deployment cannot change how access changes are held: four-eyes, step-up) and any
#   named as the gateway's held export.
site_operations[id] := op if {
	some id, op in object.get(site_high_risk, "operations", {})
	not data.wms.base.modules[op.when.module]
	id != export_approval_rule.operation # the gateway's name for a held export
}

# METADATA
# title: High-risk operations
# description: The operations of both layers (the gateway's own cannot be redefined).
high_risk_operations := object.union(site_operations, data.wms.base.high_risk.operations)

# METADATA
# title: ACR levels
# description: The LoA of each acr value (RFC 9470), the gateway's (a deployment cannot lower them).
acr_levels := data.wms.base.high_risk.acr_levels

# METADATA
# title: Approver step-up
# description: The ACR and freshness an approver needs (the gateway's; a deployment cannot weaken it).
approver_step_up := data.wms.base.high_risk.approver_step_up

# METADATA
# title: Alert step-up
# description: >-
#   The ACR and freshness a person flagged by a security alert (a login from a new device)
#   needs on their next high-risk request or approval (the gateway's).
alert_step_up := data.wms.base.high_risk.alert_step_up

# METADATA
# title: Site messages
# description: The deployment's extra reason messages (data.wms.messages), empty when none.
# scope: document
default site_messages := {}

site_messages := data.wms.messages

# METADATA
# title: Messages
# description: Reason messages {code -> {zh-CN, en}}, the gateway's with the deployment's added.
messages := object.union(site_messages, data.wms.base.messages)

# METADATA
# title: Site masks
# description: The deployment's field masks (data.wms.masks), empty when none.
# scope: document
default site_masks := {}

site_masks := data.wms.masks

# METADATA
# title: Site transitions
# description: The deployment's state sequences per module and field (data.wms.transitions), empty when none.
# scope: document
default site_transitions := {}

site_transitions := data.wms.transitions

# METADATA
# title: Site export thresholds
# description: The deployment's export thresholds (data.wms.exports), empty when none.
# scope: document
default site_exports := {}

site_exports := data.wms.exports

# METADATA
# title: Export approval rule
# description: The gateway's approval rule for large exports (operation, title, approvals, expires_hours).
# scope: document
export_approval_rule := data.wms.base.exports.approval

# METADATA
# title: Export thresholds
# description: >-
#   The thresholds of export control (reason_over_rows, approve_over_rows, refuse_over_rows):
#   the deployment's where it is a number lower than the gateway's, else the gateway's (a
#   deployment cannot loosen one, nor switch it off with an empty value).
# scope: document
export_thresholds[name] := min([gateway, site]) if {
	some name, gateway in data.wms.base.exports
	is_number(gateway)
	site := object.get(site_exports, name, gateway)
	is_number(site)
}

export_thresholds[name] := gateway if {
	some name, gateway in data.wms.base.exports
	is_number(gateway)
	not is_number(object.get(site_exports, name, gateway))
}
