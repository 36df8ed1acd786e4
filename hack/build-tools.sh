#!/usr/bin/env bash
# Builds every binary the tests and the playground need, from the Go module
# proxy only: the control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd) from k8s.io/kubernetes, kwok/kwokctl, controller-gen,
# helm and kubectl.
#
# Each group of binaries is cached outside the work tree, keyed by its pinned
# version (and the Go version), so a fresh clone on the same machine reuses
# them and only a version change rebuilds. They are linked into ./bin
# (git-ignored).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

KUBE_VERSION=v1.37.2
KWOK_VERSION=v0.8.0
CONTROLLER_TOOLS_VERSION=v0.23.0
HELM_VERSION=v3.22.0

cache_root=${DROVER_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/drover/tools}
gover=$(go env GOVERSION)
mkdir -p bin

# group NAME KEY BINARIES... -- reads the build commands from stdin-less
# function build_NAME, run with $out set to the (temporary) output dir.
group() {
  local name=$1 key=$2; shift 2
  local dir="$cache_root/$name-$(printf '%s %s' "$key" "$gover" | sha256sum | cut -c1-12)"
  local ok=1
  for b in "$@"; do [ -x "$dir/$b" ] || ok=0; done
  if [ $ok = 0 ]; then
    echo "building $name into $dir (first time only)" >&2
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    out="$dir.tmp" "build_$name"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  for b in "$@"; do ln -sfn "$dir/$b" "bin/$b"; done
}

build_controlplane() {
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} \
    -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=37 \
    -X k8s.io/component-base/version.gitTreeState=clean \
    -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z \
    -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION} \
    -X k8s.io/client-go/pkg/version.gitMajor=1 \
    -X k8s.io/client-go/pkg/version.gitMinor=37"
  (
    cd hack/tools/controlplane
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd" ./etcd
  )
}

build_kwok() {
  CGO_ENABLED=0 GOBIN="$out" go install -trimpath -ldflags "-s -w" \
    sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION} sigs.k8s.io/kwok/cmd/kwokctl@${KWOK_VERSION}
}

build_controllergen() {
  GOBIN="$out" go install sigs.k8s.io/controller-tools/cmd/controller-gen@${CONTROLLER_TOOLS_VERSION}
}

build_kubectl() {
  (
    cd hack/tools/kubectl
    CGO_ENABLED=0 go build -trimpath -o "$out/kubectl" -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} \
      -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION}" .
  )
}

build_helm() {
  CGO_ENABLED=0 GOBIN="$out" go install -trimpath -ldflags "-s -w" helm.sh/helm/v3/cmd/helm@${HELM_VERSION}
}

cp_key=$(cat hack/tools/controlplane/go.mod hack/tools/controlplane/go.sum hack/tools/controlplane/etcd/main.go | sha256sum)
group controlplane "$KUBE_VERSION $cp_key" kube-apiserver kube-controller-manager kube-scheduler etcd
group kwok "$KWOK_VERSION" kwok kwokctl
group controllergen "$CONTROLLER_TOOLS_VERSION" controller-gen
group helm "$HELM_VERSION" helm
kubectl_key=$(cat hack/tools/kubectl/go.mod hack/tools/kubectl/go.sum hack/tools/kubectl/main.go | sha256sum)
group kubectl "$kubectl_key" kubectl
hack/install-prometheus.sh # real Prometheus for the analysis tests, linked as bin/prometheus
hack/build-traefik.sh # Traefik for the traffic e2e tests; cached the same way (its own key), linked as bin/traefik
echo "tools ready in $root/bin" >&2
