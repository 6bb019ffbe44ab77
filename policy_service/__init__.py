"""The policy bundle service: builds ``rego/`` into an OPA bundle and serves it to OPA.

Edits take effect without restarting OPA or the proxy (OPA polls the service); an
edit that does not compile or fails its tests is rejected, and the last good bundle
keeps serving.
"""
