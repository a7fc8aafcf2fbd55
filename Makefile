# MCR build, test and run targets. See README.md.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
GO      ?= go
BINS    := mcrsrv mcrctl mcr-web
CMDS    := $(wildcard cmd/*)

GOLANGCI_LINT ?= golangci-lint

.PHONY: all build test vet lint run devserver bench bench-smoke clean

all: vet lint test build

build:
	@mkdir -p bin
	@for c in $(CMDS); do echo "go build $$c"; $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/$$(basename $$c) ./$$c || exit 1; done

# The whole suite, as CI runs it: unit tests, then end-to-end tests against
# real mcrsrv processes over TLS (including the OCI conformance suite).
test:
	$(GO) test -count=1 -timeout 30m ./...

vet:
	$(GO) vet ./...

# golangci-lint v2 with .golangci.yaml (the plan's linter set, gofmt and
# goimports included); .ci/run installs the pinned version.
lint:
	$(GOLANGCI_LINT) run ./...

# The embedded default: a data dir under ./srv with self-signed TLS, SQLite,
# local identity; first run prints the admin password (or uses
# $MCR_ADMIN_PASSWORD).
run: build
	@bin/mcrsrv init --dir ./srv --hostname localhost
	@if [ -x bin/mcr-web ]; then \
		echo "mcr-web: http://localhost:8080  (registry and admin API: https://localhost:8443)"; \
		bin/mcr-web server --config ./srv/mcr.toml & web=$$!; \
		trap 'kill $$web 2>/dev/null' EXIT INT TERM; \
		bin/mcrsrv server --config ./srv/mcr.toml; \
	else \
		bin/mcrsrv server --config ./srv/mcr.toml; \
	fi

# devserver is the plan's name for run.
devserver: run

# MCR against upstream distribution in one run (~10 min; not part of test).
bench:
	bash bench/run.sh

bench-smoke:
	bash bench/run.sh --smoke

clean:
	rm -rf bin

# Packaging targets: static, docker, deploy-check.
-include deploy/deploy.mk
