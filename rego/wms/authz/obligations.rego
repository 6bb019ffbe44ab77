# Obligations
#
#   What the PEP must do to an allowed request: narrow lists to the person's
#   scope (row_filter) and mask fields the person may not see (mask). The PEP
#   refuses a decision that carries an obligation it does not know.
package wms.authz

# METADATA
# title: Obligations
# description: "{row_filter: {dimension: [values] or [\"*\"]}, mask: [field paths]}"
obligations := {
	"row_filter": row_filter,
	"mask": mask,
}

# METADATA
# title: Row filter
# description: For list requests, the values each row must carry on every dimension of the module.
row_filter[dim] := filter_values(dim) if {
	input.resource.kind == "list"
	some dim in module_def.dimensions
}

# METADATA
# title: Filter values
# description: '["*"] when the person sees everything on dim, else their sorted scope.'
filter_values(dim) := ["*"] if {
	"*" in scope_values(dim)
} else := sort(scope_values(dim))

# METADATA
# title: Mask
# description: Field paths of the module's records to mask because the person lacks the permission that reveals them.
mask contains field if {
	some rule in data.wms.masks[input.action.module]
	not rule.permission in granted
	some field in rule.fields
}
