#!/usr/bin/env bash
# Builds the Terraform providers the Coder templates use from their Go modules (the Terraform
# registry is not reachable here; the Go module proxy is) and lays them out as a Terraform
# filesystem mirror, plus a CLI config file that points Terraform at it:
#
#   export TF_CLI_CONFIG_FILE=$(tests/env/terraform-providers.sh)
#   terraform init
#
# Progress goes to stderr, one line per step; stdout is only the CLI config file's path.
# Idempotent and cached: everything (mirror, CLI config, Go module and build caches) lives under
# ${XDG_CACHE_HOME:-$HOME/.cache}/devcontainer-builder/terraform, and a provider is rebuilt only
# when its pin, the Go toolchain or the build flags change.
set -Eeuo pipefail

# The pins, and the only place they are: one provider a line,
#   <namespace>/<type>  <version Terraform sees>  <Go module>@<Go version>  <-X variable for the version, or ->
# kubernetes: its go.mod has no /v3 module path, so v3 tags are not Go versions; the proxy serves the
# v3 line as a v1 pseudo-version. This commit is the 3.2.1 release plus a grpc / x/crypto bump
# (version/VERSION says 3.2.1; its version is a constant, not settable with -X).
# docker: the repository is kreuzwerker's, but go.mod still says github.com/terraform-providers/
# terraform-provider-docker; the proxy has the code under the kreuzwerker path only, as a pseudo-version
# of the commit after the v4.6.0 release (the CHANGELOG's newest entry).
PROVIDERS=(
  "coder/coder          2.20.0 github.com/coder/terraform-provider-coder/v2@v2.20.0 -"
  "hashicorp/kubernetes 3.2.1  github.com/hashicorp/terraform-provider-kubernetes@v1.13.4-0.20260821094251-3a33fb6cc605 -"
  "kreuzwerker/docker   4.6.0  github.com/kreuzwerker/terraform-provider-docker@v0.0.0-20260916201441-96d331c98ff4 main.version"
)
registry=registry.terraform.io

base=${XDG_CACHE_HOME:-$HOME/.cache}/devcontainer-builder/terraform
mirror=$base/mirror
rc=$base/terraformrc

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'terraform-providers: error: %s\n' "$*" >&2; exit 1; }
step="setup"
tmp=
trap 'rm -f "$tmp"' EXIT
trap 'printf "terraform-providers: error: %s failed (exit %s); see the output above\n" "$step" "$?" >&2' ERR

command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || die "go not found (install Go >= 1.26, or put it on PATH)"

mkdir -p "$base" "$mirror" "$base/stamps" "$base/logs"
exec 9>"$base/.lock"
flock 9 || die "could not lock $base/.lock"

# Go's caches live beside the mirror; -modcacherw keeps the module cache deletable with rm -rf.
export GOMODCACHE=$base/go/mod GOCACHE=$base/go/build GOPATH=$base/go/path
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -modcacherw -buildvcs=false" CGO_ENABLED=0
go_version=$(go env GOVERSION)
platform=$(go env GOOS)_$(go env GOARCH)

# Runs a go command with its stderr ("go: downloading ...") in the provider's log, shown on failure.
run() {
  if ! "$@" 2>>"$log"; then
    grep -v '^go: downloading ' "$log" | tail -n 40 >&2 || true
    die "$step failed: $* (full log: $log)"
  fi
}

build() {
  local addr=$1 version=$2 modver=$3 xvar=$4
  local type=${addr#*/} ldflags="-s -w" dir dest stamp want start log
  dest=$mirror/$registry/$addr/$version/$platform/terraform-provider-${type}_v$version
  stamp=$base/stamps/${addr//\//_}
  log=$base/logs/${addr//\//_}.log
  [ "$xvar" = - ] || ldflags+=" -X $xvar=$version"
  want="$addr $version $modver $go_version $platform CGO_ENABLED=0 -trimpath -ldflags=$ldflags"
  if [ -x "$dest" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    say "$addr $version: up to date"
    return 0
  fi
  start=$SECONDS
  : >"$log"
  step="go mod download $modver"
  say "$addr $version: $step"
  if ! go mod download -json "$modver" >"$log.json" 2>>"$log"; then
    sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' "$log.json" >&2
    die "$step failed (log: $log, $log.json)"
  fi
  dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' "$log.json")
  [ -f "${dir:-/nonexistent}/go.mod" ] || die "go mod download $modver gave no module directory (see $log.json)"
  # Built inside the module, so its own go.mod and go.sum pick every dependency, as upstream's release does.
  step="go build $addr $version"
  say "$addr $version: go build -trimpath -ldflags '$ldflags' ($go_version, $platform; log: $log)"
  mkdir -p "${dest%/*}"
  tmp=$(mktemp "$base/stamps/.build.XXXXXX")
  run go build -C "$dir" -trimpath -ldflags "$ldflags" -o "$tmp" .
  chmod 0755 "$tmp"
  mv -f "$tmp" "$dest"
  tmp=
  # Other versions of the provider would only be ambiguous in the mirror.
  find "$mirror/$registry/$addr" -mindepth 1 -maxdepth 1 ! -name "$version" -exec rm -rf {} +
  printf '%s\n' "$want" >"$stamp"
  say "$addr $version: built in $((SECONDS - start))s -> $dest"
}

includes=()
for line in "${PROVIDERS[@]}"; do
  read -r addr version modver xvar <<<"$line"
  build "$addr" "$version" "$modver" "$xvar"
  includes+=("\"$registry/$addr\"")
done

step="writing $rc"
list=$(IFS=,; printf '%s' "${includes[*]}" | sed 's/,/, /g')
config="# Written by devcontainer-builder's tests/env/terraform-providers.sh: use with TF_CLI_CONFIG_FILE.
provider_installation {
  filesystem_mirror {
    path    = \"$mirror\"
    include = [$list]
  }
  direct {
    exclude = [$list]
  }
}"
if [ "$(cat "$rc" 2>/dev/null)" != "$config" ]; then
  printf '%s\n' "$config" >"$rc.tmp"
  mv -f "$rc.tmp" "$rc"
  say "wrote CLI config $rc"
else
  say "CLI config $rc: up to date"
fi
say "use it with: export TF_CLI_CONFIG_FILE=$rc"
printf '%s\n' "$rc"
