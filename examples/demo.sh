#!/usr/bin/env bash
# `make demo`: bring the example repositories up as workspaces on the local Docker engine, the way a
# Coder template would run the builder, but standalone (no Coder). Each example folder becomes a git
# repository; a rerun commits any edits to it and shows the builder updating and reusing containers.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
demo=${DEMO_DIR:-/tmp/devcontainer-builder-demo}
examples=(image dockerfile compose no-config)
export PATH="$root/builder/node_modules/.bin:$root/.venv/bin:$PATH"
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.invalid
export GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.invalid

# The examples build on debian:trixie-slim and fall back to codercom/enterprise-base:ubuntu. Where no
# registry is reachable (the test machines) the provisioned stand-ins are used instead, through these
# two settings; the examples themselves keep the real names.
stand_in() { if docker image inspect "$1" >/dev/null 2>&1; then echo "$1"; else echo "$2"; fi; }
base=${DEMO_BASE_IMAGE:-$(stand_in devcontainer-builder-test/debian:trixie-slim debian:trixie-slim)}
export DEVCONTAINER_FALLBACK_IMAGE=${DEMO_FALLBACK_IMAGE:-$(stand_in devcontainer-builder-test/enterprise-base:ubuntu codercom/enterprise-base:ubuntu)}

mkdir -p "$demo/repos" "$demo/workspaces" "$demo/state"
chmod 0755 "$demo"

sync_repo() {
  local example=$1 repo=$demo/repos/$1
  if [ ! -d "$repo/.git" ]; then
    git init -q --initial-branch=main "$repo"
  fi
  rsync_like "$root/examples/$example" "$repo"
  # (no match is fine: grep's exit 1 must not end the demo under pipefail)
  { grep -rlF --exclude-dir=.git debian:trixie-slim "$repo" || true; } | while read -r file; do
    sed -i "s|debian:trixie-slim|$base|g" "$file"
  done
  git -C "$repo" add -A
  git -C "$repo" diff --cached --quiet || git -C "$repo" commit -q -m "example $example"
}

rsync_like() {
  # mirror src into dst, keeping dst/.git
  find "$2" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
  cp -a "$1/." "$2/"
}

failed=0
for example in "${examples[@]}"; do
  sync_repo "$example"
  printf '\n======== %s ========\n' "$example"
  if ! DEVCONTAINER_REPOSITORY="file://$demo/repos/$example" \
       DEVCONTAINER_WORKSPACE_FOLDER="$demo/workspaces/$example" \
       DEVCONTAINER_STATE_DIR="$demo/state/$example" \
       devcontainer-builder up; then
    failed=1
  fi
done

for example in "${examples[@]}"; do
  printf '\n======== status: %s ========\n' "$example"
  devcontainer-builder status --state-dir "$demo/state/$example" || true
done

printf '\n======== inside the containers ========\n'
for example in "${examples[@]}"; do
  # the devcontainer (or the fallback): only it has the CLI's local_folder label, not a compose project's other services
  container=$(docker ps -q --filter "label=devcontainer.local_folder=$demo/workspaces/$example" | head -n1)
  [ -n "$container" ] || continue
  printf '%-11s %s  ' "$example" "${container:0:12}"
  case $example in
    image) docker exec "$container" cat /tmp/created-at ;;
    dockerfile) docker exec "$container" sh -c 'echo "$(hello); hooks ran: $(tr "\n" " " </tmp/hooks)"' ;;
    compose) docker exec "$container" sh -c 'echo "$(cat /etc/app-image); db heartbeats: $(wc -l </data/heartbeat)"' ;;
    *) docker exec "$container" sh -c 'echo "$(id -un) on $(. /etc/os-release; echo "$PRETTY_NAME")"' ;;
  esac
done
printf '\nWorkspaces are in %s; run "make demo" again to see them updated and reused.\n' "$demo/workspaces"
exit "$failed"
