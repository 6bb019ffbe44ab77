"""Identity and access management: access changes in Keycloak and temporary grants."""
