"""The gateway's command line and local stack runner."""
