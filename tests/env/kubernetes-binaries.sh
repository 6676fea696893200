#!/usr/bin/env bash
# Builds the Kubernetes binaries the real-cluster tests run (kubelet, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl) from the Go module proxy - no release download or
# image registry is reachable on the test machines - and prints the folder that holds them:
#
#   bin=$(tests/env/kubernetes-binaries.sh)     # ~/.cache/devcontainer-builder/kubernetes/v1.34.4/bin
#
# `go install k8s.io/kubernetes/cmd/kubelet@v1.34.4` is refused (the module replaces its staging modules
# with local folders), so a small wrapper module requires k8s.io/kubernetes, points each staging module
# at its published twin (k8s.io/api v0.34.4, ...), and blank-imports the five commands so `go mod tidy`
# resolves everything. The binaries are stamped with their version (`kubectl version` says v1.34.4,
# not v0.0.0-master).
#
# Idempotent and cached by version: a second run prints the folder at once. Cold, the build takes
# 10-15 minutes on 2 busy cores; Go's module (~0.7 GB) and build (~3 GB) caches live beside the
# binaries, under ${XDG_CACHE_HOME:-$HOME/.cache}/devcontainer-builder/kubernetes.
set -Eeuo pipefail

KUBERNETES_VERSION=${KUBERNETES_VERSION:-v1.34.4}
COMMANDS=(kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl)

base=${XDG_CACHE_HOME:-$HOME/.cache}/devcontainer-builder/kubernetes
dir=$base/$KUBERNETES_VERSION
bin=$dir/bin

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'kubernetes-binaries: error: %s\n' "$*" >&2; exit 1; }

[[ $KUBERNETES_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "KUBERNETES_VERSION is v1.MINOR.PATCH, not '$KUBERNETES_VERSION'"
minor=${BASH_REMATCH[1]}
staging_version=v0.$minor.${BASH_REMATCH[2]}

command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || die "go not found (install Go >= 1.24, or put it on PATH)"

mkdir -p "$dir"
exec 9>"$base/.lock"
flock 9 || die "could not lock $base/.lock"

export GOMODCACHE=$base/go/mod GOCACHE=$base/go/build GOPATH=$base/go/path
export GOTOOLCHAIN=local GOFLAGS="-modcacherw -buildvcs=false" CGO_ENABLED=0
want="$KUBERNETES_VERSION $(go env GOVERSION) $(go env GOOS)_$(go env GOARCH) ${COMMANDS[*]}"

if [ "$(cat "$bin/.stamp" 2>/dev/null)" = "$want" ]; then
  printf '%s\n' "$bin"
  exit 0
fi

start=$SECONDS
log=$dir/build.log
: >"$log"
run() {
  if ! "$@" >>"$log" 2>&1; then
    grep -v '^go: downloading ' "$log" | tail -n 40 >&2 || true
    die "$* failed (full log: $log)"
  fi
}

say "kubernetes $KUBERNETES_VERSION: the wrapper module (log: $log)"
module=$dir/module
mkdir -p "$module"
json=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" 2>>"$log") \
  || die "go mod download k8s.io/kubernetes@$KUBERNETES_VERSION failed: $(printf '%s' "$json" | grep '"Error"')"
upstream_gomod=$(printf '%s' "$json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[ -f "$upstream_gomod" ] || die "no go.mod for k8s.io/kubernetes@$KUBERNETES_VERSION (see $log)"

{
  echo "// Written by devcontainer-builder's tests/env/kubernetes-binaries.sh: builds Kubernetes' commands."
  echo "module devcontainer-builder.test/kubernetes-binaries"
  echo
  sed -n 's/^go \(.*\)$/go \1/p' "$upstream_gomod" | head -n1
  grep '^godebug ' "$upstream_gomod" || true
  echo
  echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
  echo
  # every staging module (k8s.io/api => ./staging/src/k8s.io/api) at its published version; the
  # sample-* ones are examples nothing imports and are not all published
  sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/k8s\.io/[a-z0-9-]*$#\1#p' "$upstream_gomod" \
    | grep -v '^k8s\.io/sample-' \
    | while read -r staged; do echo "replace $staged => $staged $staging_version"; done
} >"$module/go.mod"
grep -q '^replace k8s.io/api ' "$module/go.mod" || die "found no staging modules in $upstream_gomod"
{
  echo "//go:build tools"
  echo
  echo "// Package tools only names the commands, so that go mod tidy resolves what they import."
  echo "package tools"
  echo
  echo "import ("
  for cmd in "${COMMANDS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$cmd\""; done
  echo ")"
} >"$module/tools.go"
(cd "$module" && run go mod tidy)

say "kubernetes $KUBERNETES_VERSION: go build ${COMMANDS[*]} (10-15 min cold)"
pkg() { for v in gitVersion=$KUBERNETES_VERSION gitMajor=1 gitMinor=$minor gitTreeState=clean; do
  printf -- ' -X %s.%s' "$1" "$v"; done; }
ldflags="-s -w$(pkg k8s.io/component-base/version)$(pkg k8s.io/client-go/pkg/version)"
tmp=$dir/bin.tmp
rm -rf "$tmp" && mkdir -p "$tmp"
targets=()
for cmd in "${COMMANDS[@]}"; do targets+=("k8s.io/kubernetes/cmd/$cmd"); done
(cd "$module" && run go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${targets[@]}")
# read whole, not piped into grep -q: grep leaves at the first line, kubectl's second write then meets a
# closed pipe, and pipefail fails a good build now and then (it did on a fresh machine)
said=$("$tmp/kubectl" version --client 2>/dev/null || true)
[[ $said == *"$KUBERNETES_VERSION"* ]] || die "the built kubectl does not say $KUBERNETES_VERSION (see $log)"
printf '%s\n' "$want" >"$tmp/.stamp"
rm -rf "$bin"
mv "$tmp" "$bin"
say "kubernetes $KUBERNETES_VERSION: built in $((SECONDS - start))s -> $bin"
printf '%s\n' "$bin"
