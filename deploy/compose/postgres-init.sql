-- Databases besides the gateway's own (POSTGRES_DB=wmsgate): Keycloak's and the alert store.
CREATE DATABASE keycloak OWNER wmsgate;
CREATE DATABASE wmsgate_alerts OWNER wmsgate;
