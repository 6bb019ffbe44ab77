"""Who may do what: tokens, the route map, resource attributes, the PDP client, obligations, the audit trail."""
