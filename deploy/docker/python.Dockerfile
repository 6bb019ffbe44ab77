# One image for the gateway's Python services: the proxy (PEP), the alerting service, the
# policy bundle service (which needs the opa binary to check, test and sign bundles) and
# the demo WMS. Build from the repository root:
#   docker build -f deploy/docker/python.Dockerfile -t wmsgate:dev .
ARG OPA_VERSION=1.22.3
FROM openpolicyagent/opa:${OPA_VERSION}-static AS opa

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 WMSGATE_STATE=/var/lib/wmsgate
WORKDIR /app
COPY pyproject.toml README.md ./
COPY authorizer authorizer
COPY proxy proxy
COPY alerting alerting
COPY policy_service policy_service
COPY demo_wms demo_wms
COPY wmsgate wmsgate
COPY keycloak/realm keycloak/realm
COPY config config
COPY rego rego
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /var/lib/wmsgate --create-home wmsgate
COPY --from=opa /opa /usr/local/bin/opa
USER 10001
EXPOSE 8080 8070 8182 8090
# The service is chosen by the command: see deploy/compose/compose.yaml.
CMD ["wmsgate", "proxy", "--config", "/etc/wmsgate/gateway.yaml"]
