"""A stand-in legacy WMS with seeded data; not part of the gateway."""
