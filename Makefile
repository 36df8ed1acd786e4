# Drover. `make help` lists the targets.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN        := $(CURDIR)/bin
CONTROLLER_GEN := $(BIN)/controller-gen
export KUBEBUILDER_ASSETS := $(BIN)
export DROVER_PROMETHEUS := $(BIN)/prometheus
GO_TEST_FLAGS ?=
E2E_TIMEOUT ?= 40m

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: tools
tools: ## Build (once, then cached) the control plane, kwok and controller-gen into bin/.
	hack/build-tools.sh

.PHONY: generate
generate: tools ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: tools ## Generate CRDs and RBAC into config/ and the Helm chart.
	$(CONTROLLER_GEN) crd:generateEmbeddedObjectMeta=true rbac:roleName=drover-manager \
		paths=./api/... paths=./internal/controller/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	go run ./hack/crdpatch config/crd/bases/*.yaml
	hack/sync-chart.sh

.PHONY: build
build: ## Build drover-manager and drover into bin/.
	go build -o $(BIN)/drover-manager ./cmd/drover-manager
	go build -o $(BIN)/drover ./cmd/drover
	ln -sfn drover $(BIN)/kubectl-drover

.PHONY: verify-generated
verify-generated: generate manifests ## Fail when generated code or manifests are stale.
	@git diff --exit-code -- api config charts || { echo "generated files are stale: run 'make generate manifests' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api config charts)" || { git status --porcelain -- api config charts; echo "untracked generated files: run 'make generate manifests' and commit"; exit 1; }

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: unit
unit: tools ## Unit and integration (envtest) tests, with the race detector.
	go test -race $(GO_TEST_FLAGS) ./api/... ./config/... ./internal/... ./cmd/... ./test/chart/... ./test/bench/...

.PHONY: e2e
e2e: tools build ## End-to-end tests on a kwok cluster, against a race-detector build of the manager.
	go build -race -o $(BIN)/drover-manager-race ./cmd/drover-manager
	DROVER_MANAGER=$(BIN)/drover-manager-race go test $(GO_TEST_FLAGS) -timeout $(E2E_TIMEOUT) ./test/e2e/...

.PHONY: test
test: tools verify-generated vet unit e2e ## Everything: generated-code check, vet, unit, integration, end-to-end.

.PHONY: playground
playground: tools build ## Start a local kwok cluster with Drover and a demo CloneSet.
	$(BIN)/drover playground

.PHONY: bench
bench: tools build ## Run the scale/update benchmark scenario and print a table.
	go run ./test/bench
