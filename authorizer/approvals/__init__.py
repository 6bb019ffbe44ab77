"""Four-eyes approvals: held high-risk requests and the decisions on them."""
