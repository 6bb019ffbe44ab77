# Every role x module x verb cell the product's domain spec names, as a table: for each role,
# what it may do and what it must not. A failing cell is printed (opa test -v).
package wms.authz_test

import data.wms.authz

may := {
	"picker": ["portal:view", "orders:view", "orders:pick", "orders:scan"],
	"temp_picker": ["orders:view", "orders:pick", "orders:scan"],
	"reviewer": ["orders:view", "reviews:review", "reviews:view"],
	"packer": ["orders:pack", "orders:view", "orders:ship", "customers:view"],
	"warehouse_keeper": [
		"stocktakes:count", "locations:move", "orders:update", "orders:view", "orders:approve", "reports.warehouse:view",
		"inventory:view", "inventory:update", "batches:update", "customs:update",
	],
	"ops_supervisor": [
		"orders:view", "orders:delete", "inventory:view", "reports.fulfillment:view", "reports.warehouse:view",
		"inventory:approve", "batches:approve", "orders:approve", "customs:approve",
	],
	"channel_ops": ["orders:view", "reports.fulfillment:view", "reports.sales:view"],
	"finance": ["reports.finance:view", "order_amounts:view", "reports.sales:view", "reports.sales:export"],
	"sysadmin": [
		"portal:view", "iam:view", "iam:create", "iam:update", "iam:delete", "iam:approve", "iam:review", "audit:view",
		"audit:export", "alerts:view", "alerts:update",
	],
}

must_not := {
	"picker": [
		"alerts:view", "inventory:update", "inventory:delete", "orders:delete", "orders:update", "order_items:update",
		"order_amounts:view", "customers:view", "reports.finance:view", "reports.sales:view", "batches:update",
	],
	"temp_picker": ["inventory:update", "orders:delete", "orders:update", "reports.finance:view", "iam:create"],
	"reviewer": ["order_items:update", "reviews:delete", "orders:delete", "orders:update", "inventory:update"],
	"packer": [
		"orders:pick", "reviews:review", "inventory:update", "orders:delete", "orders:update",
		"reports.sales:view", "reports.finance:view",
	],
	"warehouse_keeper": [
		"order_amounts:update", "order_amounts:view", "customers:update", "customers:view",
		"reports.sales:view", "reports.finance:view", "inventory:approve", "batches:approve", "iam:update", "iam:review",
	],
	"ops_supervisor": [
		"orders:pick", "orders:scan", "reviews:review", "orders:pack", "orders:ship",
		"inventory:update", "batches:update", "locations:move", "stocktakes:count", "alerts:update",
	],
	"channel_ops": ["inventory:view", "reports.finance:view", "orders:update", "order_amounts:view"],
	"finance": ["orders:pick", "inventory:update", "locations:move", "stocktakes:count", "orders:pack", "iam:update"],
	"sysadmin": ["orders:view", "inventory:update", "orders:delete", "reports.finance:view"],
}

# The person has just done MFA, so high-risk cells test the permission, not the step-up.
cell_input(role, perm) := {
	"subject": {
		"id": "u", "username": "u", "roles": [role], "acr": "mfa", "auth_time": 1000,
		"scope": {"warehouse": ["*"], "channel": ["*"], "order_type": ["*"]},
	},
	"request": {"time_ms": 1000000},
	"action": {"module": split(perm, ":")[0], "verb": split(perm, ":")[1]},
	"resource": {
		"kind": "item", "id": "r1",
		"attributes": {"warehouse": ["HF"], "channel": ["taobao"], "order_type": ["b2c"]},
	},
}

# Run with --var-values to see the wrong cells when this fails.
test_every_named_cell_of_the_role_matrix_holds if {
	missing := {sprintf("%s should be able to %s", [role, perm]) |
		some role, perms in may
		some perm in perms
		not authz.decision.allow with input as cell_input(role, perm)
	}
	excess := {sprintf("%s must not be able to %s", [role, perm]) |
		some role, perms in must_not
		some perm in perms
		authz.decision.allow with input as cell_input(role, perm)
	}
	missing | excess == set()
}

test_every_role_of_the_domain_is_in_the_matrix if {
	object.keys(data.wms.roles) == object.keys(may)
	object.keys(may) == object.keys(must_not)
}
