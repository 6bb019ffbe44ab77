"""Authorization inputs and the PDP: the route map, resource attributes, scope, tenancy, query
rules, the policy input and the decision."""
