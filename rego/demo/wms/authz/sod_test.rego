# Separation of duties in the demo: which role pairs conflict.
package wms.authz_test

import data.wms.authz

test_a_keeper_who_is_also_a_supervisor_is_a_toxic_combination if {
	conflicts := authz.role_conflicts with input as {"subject": {"roles": ["ops_supervisor", "warehouse_keeper"]}}
	[c.roles | some c in conflicts] == [["ops_supervisor", "warehouse_keeper"]]
	every c in conflicts {
		c["zh-CN"] != ""
		c.en != ""
	}
}

test_roles_that_do_not_conflict_are_fine if {
	count(authz.role_conflicts) == 0 with input as {"subject": {"roles": ["picker", "packer", "reviewer"]}}
	count(authz.role_conflicts) == 0 with input as {"subject": {"roles": ["warehouse_keeper"]}}
}

test_every_pair_of_the_demo_is_caught if {
	roles := ["finance", "ops_supervisor", "warehouse_keeper"]
	count(authz.role_conflicts) == 2 with input as {"subject": {"roles": roles}}
}
