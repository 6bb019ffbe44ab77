"""The admin console's page templates."""
