#!/usr/bin/env bash
# Installs and starts everything the demo and the tests need on a fresh Debian 12 machine, as root.
# Idempotent: each step checks first and does nothing when its result is already there, so a second
# run takes seconds. Downloads are cached under ~/.cache/devcontainer-builder.
#
#   tests/env/provision.sh demo   engine, base images, devcontainer CLI, the package
#   tests/env/provision.sh test   the same plus registry, sshd, bats, shellcheck and the test tools
#   tests/env/provision.sh unit   only the virtualenv with the package and the test tools (no root, no engine)
set -euo pipefail

profile=${1:-test}
case "$profile" in demo | test | unit) ;; *) echo "usage: provision.sh demo|test|unit" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/devcontainer-builder
venv=$root/.venv
mkdir -p "$cache"

# test-only names (tests/support/images.py): stand-ins must never shadow the registry's real images
BASE_IMAGE=devcontainer-builder-test/debian:trixie-slim
FALLBACK_IMAGE=devcontainer-builder-test/enterprise-base:ubuntu
DIND_IMAGE=devcontainer-builder-test/dind:trixie
KV_IMAGE=devcontainer-builder-test/kv:trixie
# the templates' test tools (terraform-providers.sh pins the providers)
CHECKOV_VERSION=3.3.30
TOFU_VERSION=1.10.10

say() { printf '==> %s\n' "$*"; }

mirror() {
  # the machine's own Debian mirror, so the same archive serves the host, debootstrap and images
  local uri
  uri=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | head -n1 | awk '{print $2}')
  echo "${uri:-http://deb.debian.org/debian}"
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_docker() {
  if timeout 10 docker info >/dev/null 2>&1; then return 0; fi
  say "starting dockerd"
  # no systemd on these machines: run the daemon in the background, logging beside the cache, in a
  # session of its own so it outlives the process group that provisioned it (a job control's kill of
  # that group would otherwise take the engine down with it)
  setsid nohup dockerd >"$cache/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    timeout 5 docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "dockerd did not start within 60 s; see $cache/dockerd.log" >&2
  tail -n 20 "$cache/dockerd.log" >&2
  exit 1
}

trixie_apt() {
  # A private apt configuration for Debian trixie: downloads .debs the bookworm host lacks (buildx,
  # goss), verified against the host's archive keyring, without touching the host's sources.
  local dir=$cache/apt-trixie
  mkdir -p "$dir/lists/partial" "$dir/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(mirror) trixie main" >"$dir/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
              -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache::Archives=$dir/archives"
              -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o APT::Sandbox::User=root)
  if [ ! -f "$dir/lists/.updated" ] || [ -n "$(find "$dir/lists/.updated" -mmin +1440)" ]; then
    apt-get "${opts[@]}" update -qq >/dev/null
    touch "$dir/lists/.updated"
  fi
  (cd "$dir" && for pkg in "$@"; do
     ls "$dir"/"${pkg}"_*.deb >/dev/null 2>&1 || apt-get "${opts[@]}" download -qq "$pkg" >/dev/null
   done)
}

trixie_binary() {
  # trixie_binary PACKAGE PATH-IN-PACKAGE DEST: one executable of a trixie package, installed as DEST
  local tmp
  trixie_apt "$1"
  tmp=$(mktemp -d)
  dpkg -x "$cache"/apt-trixie/"$1"_*.deb "$tmp"
  mkdir -p "$(dirname "$3")"
  install -m 0755 "$tmp/$2" "$3"
  rm -rf "$tmp"
}

install_goss() {
  # goss is packaged in trixie only; its static binary is copied into containers of the image (dgoss)
  local bin=$cache/bin/goss
  [ -x "$bin" ] && return 0
  say "goss (from trixie)"
  trixie_binary goss usr/bin/goss "$bin"
}

install_buildx() {
  # Kept out of ~/.docker on purpose: the host engine (Docker 20.10, BuildKit 0.8) builds features only
  # with the classic builder offline. Tests that need buildx point DOCKER_CONFIG at this folder.
  local plugin=$cache/docker-config-buildx/cli-plugins/docker-buildx
  [ -x "$plugin" ] && return 0
  say "docker buildx (from trixie)"
  trixie_binary docker-buildx usr/libexec/docker/cli-plugins/docker-buildx "$plugin"
}

install_compose() {
  # Docker Compose v2, the plugin the builder image ships (trixie's docker-compose): bookworm only has
  # the old Python docker-compose. Installed where the docker CLI finds plugins for every user, unless
  # this machine's docker already has a compose of its own.
  docker compose version >/dev/null 2>&1 && return 0
  say "docker compose (from trixie)"
  trixie_binary docker-compose usr/libexec/docker/cli-plugins/docker-compose /usr/local/lib/docker/cli-plugins/docker-compose
}

base_image() {
  # debian:trixie-slim cannot be pulled here: build it with debootstrap and import it under a test-only
  # name (never the real one: on a developer's machine it would shadow the registry's image)
  # an import has one history entry: more means something built over the name (a hostile-repository
  # review that tags its build with it, say), and every image built on it would carry that in
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    [ "$(docker history -q "$BASE_IMAGE" | wc -l)" = 1 ] && return 0
    say "$BASE_IMAGE was built over: importing it again"
    docker rmi -f "$BASE_IMAGE" >/dev/null
  fi
  local tarball=$cache/debian-trixie-minbase.tar.gz
  if [ ! -s "$tarball" ]; then
    say "debootstrap trixie (about 40 s, once)"
    local dir
    dir=$(mktemp -d)
    debootstrap --variant=minbase trixie "$dir" "$(mirror)" >"$cache/debootstrap.log" 2>&1 \
      || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin
    tar -C "$dir" -c . | gzip -1 >"$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
    rm -rf "$dir"
  fi
  say "importing $BASE_IMAGE"
  gunzip -c "$tarball" | docker import --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
}

cached_image() {
  # cached_image NAME DOCKERFILE: build once, then keep a `docker save` tarball keyed by the
  # Dockerfile's hash so later fresh engines load it in seconds instead of running apt again
  local name=$1 dockerfile=$2
  local key tarball
  key=$(sha256sum "$dockerfile" | cut -c1-16)
  # an image built from an older version of the Dockerfile is built again
  [ "$(docker image inspect -f '{{index .Config.Labels "devcontainer-builder.key"}}' "$name" 2>/dev/null)" = "$key" ] \
    && return 0
  tarball=$cache/images/$(echo "$name" | tr '/:' '__')-$key-labelled.tar.gz
  if [ -s "$tarball" ]; then
    say "loading $name"
    gunzip -c "$tarball" | docker load >/dev/null
    return 0
  fi
  say "building $name (stand-in image, from $dockerfile)"
  docker build -q -t "$name" --label "devcontainer-builder.key=$key" -f "$dockerfile" "$(dirname "$dockerfile")" \
    >"$cache/image-build.log" 2>&1 \
    || { tail -n 30 "$cache/image-build.log" >&2; exit 1; }
  mkdir -p "$cache/images"
  docker save "$name" | gzip -1 >"$tarball.tmp"
  mv "$tarball.tmp" "$tarball"
}

devcontainer_cli() {
  local want
  want=$(node -e 'console.log(require(process.argv[1]).dependencies["@devcontainers/cli"])' "$root/builder/package.json")
  if [ "$("$root/builder/node_modules/.bin/devcontainer" --version 2>/dev/null)" = "$want" ]; then return 0; fi
  say "devcontainer CLI $want (npm ci)"
  (cd "$root/builder" && npm ci --no-fund --no-audit --cache "$cache/npm" --loglevel=error >/dev/null)
}

install_moon() {
  local want=${MOON_VERSION:-$(sed -n "s/^export MOON_VERSION := //p" "$root/Makefile")}
  local bin=$cache/moon/node_modules/.bin/moon
  if [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null)" = "moon $want" ]; then return 0; fi
  say "moon $want (npm)"
  rm -rf "$cache/moon"
  mkdir -p "$cache/moon"
  npm install --prefix "$cache/moon" --no-save --no-package-lock --no-fund --no-audit --loglevel=error \
    --cache "$cache/npm" "@moonrepo/cli@$want" >/dev/null
}

terraform_tools() {
  # The templates' tests: terraform (the machine's; else OpenTofu built from its Go module), the pinned
  # providers built from theirs into a filesystem mirror (terraform-providers.sh), and checkov in a
  # virtualenv of its own (its many pinned dependencies stay out of the project's).
  command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
  if ! command -v terraform >/dev/null 2>&1 && [ ! -x "$cache/bin/terraform" ]; then
    say "terraform not found: building OpenTofu $TOFU_VERSION from its Go module"
    mkdir -p "$cache/bin"
    GOBIN=$cache/bin GOTOOLCHAIN=local GOFLAGS=-modcacherw GOMODCACHE=$cache/terraform/go/mod \
      GOCACHE=$cache/terraform/go/build go install "github.com/opentofu/opentofu/cmd/tofu@v$TOFU_VERSION"
    ln -sf tofu "$cache/bin/terraform"
  fi
  "$root/tests/env/terraform-providers.sh" >/dev/null
  local checkov=$cache/checkov
  if [ "$("$checkov/bin/checkov" --version 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
    say "checkov $CHECKOV_VERSION (its own virtualenv)"
    rm -rf "$checkov"
    python3 -m venv "$checkov"
    PIP_CACHE_DIR=${PIP_CACHE_DIR:-$HOME/.cache/pip} "$checkov/bin/pip" install -q --disable-pip-version-check \
      "checkov==$CHECKOV_VERSION"
  fi
}

kubernetes_tools() {
  # The real-cluster tests (tests/env/kubernetes.sh): Debian's containerd and runc (they come with
  # docker.io), the CNI plugins and etcd, and Kubernetes' own binaries built from the Go module proxy
  # (kubernetes-binaries.sh: 10-15 minutes once, cached under ~/.cache by version). Debian's etcd-server
  # would start a cluster-wide etcd of its own at install: a policy-rc.d that refuses keeps it from
  # starting, and is removed again.
  apt_install containerd runc containernetworking-plugins
  if ! dpkg-query -W -f='${Status}' etcd-server 2>/dev/null | grep -q 'install ok installed'; then
    local policy=/usr/sbin/policy-rc.d placed=""
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\n# tests/env/provision.sh: no daemon starts while etcd-server is installed\nexit 101\n' >"$policy"
      chmod 0755 "$policy"
      placed=1
    fi
    apt_install etcd-server
    if [ -n "$placed" ]; then rm -f "$policy"; fi
  fi
  if [ -x /etc/init.d/etcd ] && /etc/init.d/etcd status >/dev/null 2>&1; then
    say "stopping the etcd Debian's package started (the test cluster runs its own)"
    /etc/init.d/etcd stop >/dev/null 2>&1 || true
  fi
  if [ -n "$kubernetes_build" ]; then
    wait "$kubernetes_build" || { tail -n 20 "$cache/kubernetes-binaries.log" >&2; exit 1; }
  fi
  "$root/tests/env/kubernetes-binaries.sh" >/dev/null
}

kubernetes_build=""
start_kubernetes_build() {
  # The Kubernetes binaries take 10-15 minutes to compile once: started first, in the background, the
  # build overlaps the downloads, debootstrap and image builds below; kubernetes_tools waits for it.
  command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
  command -v go >/dev/null 2>&1 || return 0  # kubernetes_tools then reports it
  "$root/tests/env/kubernetes-binaries.sh" >"$cache/kubernetes-binaries.log" 2>&1 &
  kubernetes_build=$!
}

python_env() {
  python_install
  # bytecode, as the image ships it: where PYTHONDONTWRITEBYTECODE is set (these machines set it),
  # every run would otherwise compile the package anew. A stale .pyc is noticed and ignored by Python.
  "$venv/bin/python" -m compileall -q "$root/builder/devcontainer_builder"
}

python_install() {
  local stamp
  local extras=test
  [ "$profile" = demo ] && extras=demo
  stamp=$venv/.installed-$(sha256sum <"$root/builder/pyproject.toml" | cut -c1-16)-$extras
  [ -f "$stamp" ] && return 0
  # the test tools include the demo's needs: a test venv serves the demo, not the other way round
  [ "$extras" = demo ] && compgen -G "$venv/.installed-$(sha256sum <"$root/builder/pyproject.toml" | cut -c1-16)-test" >/dev/null && return 0
  say "python virtualenv ($venv)"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  local extra=""
  [ "$extras" = test ] && extra="[test]"
  PIP_CACHE_DIR=${PIP_CACHE_DIR:-$HOME/.cache/pip} "$venv/bin/pip" install -q --disable-pip-version-check \
    --config-settings editable_mode=compat -e "$root/builder$extra" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
  "$venv/bin/devcontainer-builder" --version >/dev/null
  rm -f "$venv"/.installed-*
  touch "$stamp"
}

rootless_podman() {
  # what rootless Podman needs for a user, as a VM's cloud-init sets it up (template/modules/vm-host):
  # subordinate uids and gids, overlay storage (native on kernels >= 5.13) and a runtime dir, which
  # systemd-logind would make on a machine with logins
  local user=$1 uid home conf
  uid=$(id -u "$user")
  home=$(getent passwd "$user" | cut -d: -f6)
  grep -q "^$user:" /etc/subuid || usermod --add-subuids 300000-365535 "$user"
  grep -q "^$user:" /etc/subgid || usermod --add-subgids 300000-365535 "$user"
  conf=$home/.config/containers/storage.conf
  if [ ! -f "$conf" ]; then
    say "rootless Podman storage for $user"
    install -d -o "$user" -g "$user" "$home/.config" "$home/.config/containers"
    printf '[storage]\ndriver = "overlay"\n' >"$conf"
    chown "$user:$user" "$conf"
  fi
  install -d -m 0700 -o "$user" -g "$user" "/run/user/$uid"
  tun_device
}

tun_device() {
  # Rootless Podman's network (slirp4netns) opens /dev/net/tun as the user. Debian makes it 0666; some
  # machines of this kind have it 0600 root, and then every rootless container fails ("open
  # /dev/net/tun: Permission denied"). Give it Debian's mode back (the kernel checks the caller's
  # namespace capability to create an interface, so the mode grants nothing more than Debian does).
  [ -c /dev/net/tun ] || { mkdir -p /dev/net && mknod -m 0666 /dev/net/tun c 10 200; }
  if [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
    say "/dev/net/tun: mode $(stat -c %a /dev/net/tun) -> 0666 (Debian's default; rootless Podman needs it)"
    chmod 0666 /dev/net/tun
  fi
}

if [ "$profile" = unit ]; then
  # the quick tier runs anywhere Python 3.11+ does: no apt, no engine, no root
  python_env
  say "environment ready (unit)"
  exit 0
fi

packages=(docker.io debootstrap git ca-certificates openssh-client)
[ "$profile" = test ] && packages+=(docker-registry openssh-server bats shellcheck procps socat python3-venv chromium
  podman uidmap slirp4netns fuse-overlayfs systemd
  build-essential pkg-config libkrb5-dev)  # the last three: code-server's native modules (code-server.sh)
[ "$profile" = test ] && start_kubernetes_build
apt_install "${packages[@]}"
start_docker
install_compose
base_image
cached_image "$FALLBACK_IMAGE" "$root/tests/env/images/enterprise-base.Dockerfile"
[ "$profile" = test ] && cached_image "$DIND_IMAGE" "$root/tests/env/images/dind.Dockerfile"
[ "$profile" = test ] && cached_image "$KV_IMAGE" "$root/tests/env/images/kv.Dockerfile"
devcontainer_cli
python_env
if [ "$profile" = test ]; then
  # an ordinary user for the tests that run the builder as someone who is not root (the README's quick
  # start): in the engine socket's group, with a home of its own
  if ! id dcb-user >/dev/null 2>&1; then
    say "user dcb-user"
    useradd --create-home --shell /bin/bash dcb-user
  fi
  socket_group=$(stat -c %G /var/run/docker.sock)
  id -nG dcb-user | tr ' ' '\n' | grep -qx "$socket_group" || usermod -aG "$socket_group" dcb-user
  rootless_podman dcb-user
fi
if [ "$profile" = test ]; then
  install_buildx
  install_goss
  install_moon
  terraform_tools
  kubernetes_tools
  # a real code-server for the editor's tests, built once from npm and packaged as an admin's mirror
  # serves it (~2 min the first time; cached under $cache/code-server/<version>)
  "$root/tests/env/code-server.sh" >/dev/null
fi
say "environment ready ($profile)"
