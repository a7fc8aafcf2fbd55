# deploy/deploy.mk: packaging targets (static binaries, container images,
# deployment checks). Works both ways:
#
#   include deploy/deploy.mk          # from the top-level Makefile
#   make -f deploy/deploy.mk static   # standalone, from the repository root
#
# Targets:
#   static        static (musl) binaries in bin/static/ for each existing
#                 cmd/{mcrsrv,mcrctl,mcr-web}; needs Debian's musl-tools
#   docker        container images mcr:$(VERSION) (Dockerfile.api) and
#                 mcr-web:$(VERSION) (Dockerfile.web); needs a Docker engine
#   deploy-check  deploy/scripts/ci-check.sh (static build, install.sh twice
#                 into a scratch root, systemd-analyze verify)
#
# Every variable below uses ?= so the including Makefile (or the command
# line) can override it; nothing here redefines the top Makefile's LDFLAGS,
# CMDS or BINS.

# Standalone (`make -f deploy/deploy.mk`) when this file is the only makefile
# read so far; the default goal is then `static`. When included, the default
# goal stays whatever the including Makefile defines.
ifeq ($(words $(MAKEFILE_LIST)),1)
DEPLOY_STANDALONE := 1
endif
_deploy_prev_goal := $(.DEFAULT_GOAL)

# Repository root = the parent of this file's directory, so the targets work
# whatever the current directory is.
DEPLOY_ROOT := $(patsubst %/,%,$(dir $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))))

VERSION      ?= $(shell git -C $(DEPLOY_ROOT) describe --tags --always --dirty 2>/dev/null || echo dev)
GO           ?= go
DOCKER       ?= docker
MUSL_CC      ?= musl-gcc
STATIC_DIR   ?= bin/static
STATIC_TAGS  ?= sqlite_omit_load_extension netgo osusergo
# Same flags as Dockerfile.api / Dockerfile.web: stripped, version injected,
# cgo (mattn/go-sqlite3) linked statically against musl.
STATIC_LDFLAGS ?= -s -w -X main.version=$(VERSION) -linkmode external -extldflags -static
# Image names follow MCP's convention: <service> for the api component,
# <service>-<component> for the others. IMAGE_PREFIX may name a registry,
# e.g. IMAGE_PREFIX=mcr.svc.mcp.metacircular.net:8443/
IMAGE_PREFIX ?=

# The deployable commands, only those whose directory exists (with Go files).
DEPLOY_CMDS := $(strip $(foreach c,mcrsrv mcrctl mcr-web,$(if $(wildcard $(DEPLOY_ROOT)/cmd/$(c)/*.go),$(c))))

.PHONY: static docker deploy-check

static:
	@command -v $(MUSL_CC) >/dev/null 2>&1 || { echo "static: $(MUSL_CC) not found (apt-get install musl-tools)" >&2; exit 1; }
	@test -n "$(DEPLOY_CMDS)" || { echo "static: no cmd/mcrsrv, cmd/mcrctl or cmd/mcr-web to build" >&2; exit 1; }
	@mkdir -p $(DEPLOY_ROOT)/$(STATIC_DIR)
	@set -e; cd $(DEPLOY_ROOT); for c in $(DEPLOY_CMDS); do \
		echo "static: $(STATIC_DIR)/$$c (version $(VERSION))"; \
		CC=$(MUSL_CC) CGO_ENABLED=1 $(GO) build -trimpath -tags '$(STATIC_TAGS)' \
			-ldflags '$(STATIC_LDFLAGS)' -o $(STATIC_DIR)/$$c ./cmd/$$c; \
	done

docker:
	cd $(DEPLOY_ROOT) && $(DOCKER) build --build-arg VERSION=$(VERSION) \
		-t $(IMAGE_PREFIX)mcr:$(VERSION) -f Dockerfile.api .
ifneq ($(filter mcr-web,$(DEPLOY_CMDS)),)
	cd $(DEPLOY_ROOT) && $(DOCKER) build --build-arg VERSION=$(VERSION) \
		-t $(IMAGE_PREFIX)mcr-web:$(VERSION) -f Dockerfile.web .
else
	@echo "docker: cmd/mcr-web does not exist yet; skipping Dockerfile.web"
endif

deploy-check:
	cd $(DEPLOY_ROOT) && bash deploy/scripts/ci-check.sh

ifdef DEPLOY_STANDALONE
.DEFAULT_GOAL := static
else
.DEFAULT_GOAL := $(_deploy_prev_goal)
endif
