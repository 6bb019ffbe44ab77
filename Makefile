# Two commands do everything on a fresh machine:
#   make demo   - set up (first time only) and run the gateway with its demo WMS until Ctrl-C
#   make test   - set up (first time only), start the real services, run every test, stop them
.PHONY: setup demo test lint rego-test plugin-test unit-test integration-test bench profile bench-soak bench-offboard bench-audit bench-alerts bench-scale

setup:
	@bash deploy/local/setup.sh

demo: setup
	@.venv/bin/wmsgate demo

rego-test: setup
	@bash deploy/local/rego-check.sh

unit-test: setup
	.venv/bin/pytest -q tests/unit tests/store

integration-test: setup
	.venv/bin/pytest -q tests/integration

# ruff over the repository, mypy --strict over authorizer/ and proxy/ (settings in pyproject.toml).
lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy

# Lint, then every test on SQLite (the default store), then the store and integration tests
# again on PostgreSQL (a throwaway cluster from the Debian package).
test: setup
	@$(MAKE) --no-print-directory lint
	@bash deploy/local/rego-check.sh
	@$(MAKE) --no-print-directory plugin-test
	.venv/bin/pytest -q -p no:cacheprovider tests
	WMSGATE_TEST_DB=postgresql .venv/bin/pytest -q -p no:cacheprovider tests/store tests/integration

# The Keycloak event listener (Java): compile against the pinned Keycloak SPI and run its JUnit tests.
plugin-test:
	@echo "[plugin] mvn test keycloak/event-listener"
	@mvn -q -B -f keycloak/event-listener/pom.xml clean test
	@grep -h "Tests run" keycloak/event-listener/target/surefire-reports/*.txt

# The gateway beside a bare aiohttp pass-through, loaded with wrk (Debian package wrk).
bench: setup
	.venv/bin/python bench/proxy_overhead.py

# Where a request's CPU goes, stage by stage (py-spy samples the proxy under wrk load).
profile: setup
	.venv/bin/python bench/profile_gateway.py

# The gateway's memory after 100k and after 1M requests (about 20-30 minutes here).
bench-soak: setup
	.venv/bin/python bench/soak.py

bench-offboard: setup
	.venv/bin/python bench/offboard_latency.py

bench-audit: setup
	.venv/bin/python bench/audit_store.py

bench-alerts: setup
	.venv/bin/python bench/alert_latency.py

bench-scale: setup
	.venv/bin/python bench/scale_out.py
