"""Jinja2 templates of the gateway's pages (a package so that installs carry them)."""
