"""Enforcing decisions: obligations on answers (row filters, masks, HTML tables), enforce and
report modes, the WMS caller identity."""
