"""Authentication: bearer tokens and JWKS, the OIDC relying party, browser sessions, revocations."""
