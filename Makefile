# fulcrum: developer and CI entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

GO ?= go
FUZZTIME ?= 60s
FUZZTIME_SHORT ?= 5s
SOAK_DURATION ?= 3m
SOAK_FLAGS ?=
SOAK_TIMEOUT ?= 1h
BENCH_ARGS ?=

# Where the tests find their services (scripts/services.sh makes them answer).
export FULCRUM_TEST_REDIS_ADDR ?= 127.0.0.1:6379
export FULCRUM_TEST_POSTGRES_DSN ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
# The h2spec binary e2e/h2spec_test.go runs: by default where `make h2spec` (scripts/h2spec.sh) installs it.
ifndef FULCRUM_TEST_H2SPEC
FULCRUM_TEST_H2SPEC := $(shell GO=$(GO) bash scripts/h2spec.sh --path)
endif
export FULCRUM_TEST_H2SPEC

.PHONY: test services browser-deps h2spec vet fmt-check unit fuzz-short fuzz soak bench build

## test: services and test tools up (Redis, PostgreSQL, browser, h2spec), vet, gofmt, short fuzz, then the race-enabled tests.
## The unit tests run last so the output closes on go test's own summary.
test: services browser-deps h2spec vet fmt-check fuzz-short unit

## services: Redis and PostgreSQL on loopback (installs and starts them if absent).
services:
	bash scripts/services.sh

## browser-deps: node, Debian chromium and e2e/browser/node_modules for the browser test (installs what is missing).
browser-deps:
	bash scripts/browser.sh

## h2spec: the pinned h2spec (HTTP/2 conformance) for e2e/h2spec_test.go (installs it with go install when absent).
h2spec:
	GO=$(GO) bash scripts/h2spec.sh >/dev/null

vet:
	$(GO) vet ./...

fmt-check:
	@files=$$(gofmt -l .); \
	if [ -n "$$files" ]; then echo "gofmt: these files need formatting (run gofmt -w):"; echo "$$files"; exit 1; fi; \
	echo "gofmt: ok"

unit:
	$(GO) test -race -count=1 ./...

## fuzz-short: every Fuzz target for FUZZTIME_SHORT (5s).
fuzz-short:
	GO=$(GO) bash scripts/fuzz.sh $(FUZZTIME_SHORT)

## fuzz: every Fuzz target for FUZZTIME (60s).
fuzz:
	GO=$(GO) bash scripts/fuzz.sh $(FUZZTIME)

## soak: the soak test (e2e/soak_test.go) for SOAK_DURATION (3m): load, reloads every 3 s, keepalive flaps,
## persistence churn, then the leak checks; SOAK_FLAGS=-race adds the race detector. Figures go to
## $FULCRUM_ARTIFACTS/soak.json when that is set. `make test` runs a 7 s version.
soak:
	SOAK_DURATION=$(SOAK_DURATION) $(GO) test $(SOAK_FLAGS) -count=1 -v -timeout=$(SOAK_TIMEOUT) -run '^TestSoak$$' ./e2e/

## bench: compare with HAProxy and NGINX (see bench/README.md); BENCH_ARGS="--size 65536".
bench:
	bench/run $(BENCH_ARGS)

build:
	$(GO) build -o bin/fulcrum ./cmd/fulcrum
