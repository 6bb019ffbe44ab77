# Keycloak with the gateway's event listener, optimized for PostgreSQL. Build from the
# repository root:
#   docker build -f deploy/docker/keycloak.Dockerfile -t wmsgate-keycloak:dev .
ARG KEYCLOAK_VERSION=26.5.5
FROM maven:3.9-eclipse-temurin-17 AS listener
WORKDIR /build
COPY keycloak/event-listener .
RUN mvn -q -B package -DskipTests

FROM quay.io/keycloak/keycloak:${KEYCLOAK_VERSION} AS builder
ENV KC_DB=postgres KC_HEALTH_ENABLED=true KC_METRICS_ENABLED=true
COPY --from=listener /build/target/wmsgate-keycloak-events-*.jar /opt/keycloak/providers/
RUN /opt/keycloak/bin/kc.sh build

FROM quay.io/keycloak/keycloak:${KEYCLOAK_VERSION}
COPY --from=builder /opt/keycloak/ /opt/keycloak/
ENTRYPOINT ["/opt/keycloak/bin/kc.sh"]
CMD ["start", "--optimized"]
