"""The gateway's own endpoints under ``/_gateway/`` (health now; approvals, access, audit later)."""
