# MCR build, test and run targets. See README.md.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
GO      ?= go
BINS    := mcrsrv mcrctl mcr-web
CMDS    := $(wildcard cmd/*)

GOLANGCI_LINT ?= golangci-lint

.PHONY: all build test vet lint run devserver bench bench-smoke clean proto proto-lint proto-check proto-tools fuzz

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

# Every fuzz target for a fixed execution count (~15 s each), as CI runs them
# (FUZZSCALE=4 for four times as many; see .ci/fuzz).
fuzz:
	.ci/fuzz

# golangci-lint v2 with .golangci.yaml (the plan's linter set, gofmt and
# goimports included); .ci/run installs the pinned version. Parallel runs
# (several work trees on one machine) share the cache safely.
lint:
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...

# gRPC API (proto/mcr/v1 -> gen/mcr/v1). Tools at the versions CI pins
# (`make proto-tools` installs them with go install).
BUF_VERSION                ?= v1.75.0
PROTOC_GEN_GO_VERSION      ?= v1.36.12
PROTOC_GEN_GO_GRPC_VERSION ?= v1.5.1
GRPCURL_VERSION            ?= v1.9.3

proto-tools:
	$(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	$(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

proto:
	buf generate

proto-lint:
	buf lint

# CI: lint, the committed stubs are what `make proto` generates, and no
# breaking change against main's protos (once main has them).
proto-check: proto-lint proto
	git diff --exit-code -- gen/ || { echo "gen/ is stale: run make proto and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- gen/)" || { echo "gen/ has uncommitted files: run make proto and commit"; git status --porcelain -- gen/; exit 1; }
	@if git rev-parse -q --verify main >/dev/null && git cat-file -e main:buf.yaml 2>/dev/null; then \
		echo "buf breaking --against main"; buf breaking --against "$$(git rev-parse --git-common-dir)#branch=main"; \
	else echo "buf breaking: main has no protos yet; skipped"; fi

# The embedded default: a data dir under ./srv with self-signed TLS, SQLite,
# local identity, listening on loopback only; first run prints the admin
# password (or uses $MCR_ADMIN_PASSWORD).
RUN_LISTEN      ?= 127.0.0.1:8443
RUN_GRPC_LISTEN ?= 127.0.0.1:9443
RUN_WEB_LISTEN  ?= 127.0.0.1:8080
RUN_PORT        := $(lastword $(subst :, ,$(RUN_LISTEN)))
RUN_WEB_PORT    := $(lastword $(subst :, ,$(RUN_WEB_LISTEN)))
run: build
	@bin/mcrsrv init --dir ./srv --hostname localhost --listen $(RUN_LISTEN) --grpc-listen $(RUN_GRPC_LISTEN) --web-listen $(RUN_WEB_LISTEN)
	@echo "registry and admin API: https://localhost:$(RUN_PORT)   (loopback only)"
	@echo "admin CLI:   bin/mcrctl --config srv/mcr.toml status"
	@echo "token:       export MCR_TOKEN=\$$(bin/mcrctl --config srv/mcr.toml login --username admin)   (then mcrctl uses it)"
	@echo "curl:        curl --cacert srv/certs/cert.pem -H \"Authorization: Bearer \$$MCR_TOKEN\" https://localhost:$(RUN_PORT)/v1/gc/status"
	@echo "             (a token also comes from POST /v1/auth/login {\"username\",\"password\"})"
	@if [ -x bin/mcr-web ]; then \
		echo "mcr-web:     http://localhost:$(RUN_WEB_PORT)"; \
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
