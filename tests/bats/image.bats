#!/usr/bin/env bats
# The builder image's command-line contract: exit codes, messages, subcommands passed through, status.
# Run by `make test` (after `make image`, beside pytest: every test has its own state folder and containers); IMAGE names
# the image under test.

setup_file() {
  export IMAGE=${IMAGE:-devcontainer-builder:dev}
  docker image inspect "$IMAGE" >/dev/null
}

setup() {
  STATE=$(mktemp -d)
  chmod 0777 "$STATE"
}

teardown() {
  rm -rf "$STATE"
}

builder() {
  docker run --rm "$@"
}

fetch() {
  # $2: the Host header, when the URL's address is not a name serve answers to (DEVCONTAINER_SERVE_HOSTS)
  python3 -c 'import sys, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Host": sys.argv[2]} if sys.argv[2] else {})
sys.stdout.write(urllib.request.urlopen(request, timeout=5).read().decode())' "$1" "${2:-}"
}

@test "no arguments and no environment: exit 2 naming DEVCONTAINER_REPOSITORY and the fix" {
  run builder "$IMAGE"
  [ "$status" -eq 2 ]
  [[ "$output" == *"DEVCONTAINER_REPOSITORY is not set"* ]]
  [[ "$output" == *"Set it in the environment or pass --repository"* ]]
  [[ "$output" != *"Traceback"* ]]
}

@test "every bad variable is named in one message" {
  run builder -e DEVCONTAINER_REPOSITORY=--upload-pack=x -e DEVCONTAINER_BUILD_TIMEOUT=soon \
    -e DEVCONTAINER_BRANCH=-x "$IMAGE"
  [ "$status" -eq 2 ]
  [[ "$output" == *"DEVCONTAINER_REPOSITORY"* ]]
  [[ "$output" == *"DEVCONTAINER_BUILD_TIMEOUT"* ]]
  [[ "$output" == *"DEVCONTAINER_BRANCH"* ]]
}

@test "an unknown mode is bad input" {
  run builder -e DEVCONTAINER_BUILDER_MODE=dance "$IMAGE"
  [ "$status" -eq 2 ]
  [[ "$output" == *"DEVCONTAINER_BUILDER_MODE 'dance' is not one of 'up', 'serve', 'up-serve'"* ]]
}

@test "an unknown command is a usage error, exit 2" {
  run builder "$IMAGE" frobnicate --now
  [ "$status" -eq 2 ]
  [[ "$output" == *"unknown command 'frobnicate'"* ]]
  [[ "$output" == *"usage: docker run"* ]]
}

@test "--help explains the image's commands" {
  run builder "$IMAGE" --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"usage: docker run"* ]]
  [[ "$output" == *"DEVCONTAINER_BUILDER_MODE"* ]]
  # every command click knows, listed from click itself (install-service was once missing here)
  for command in up serve rebuild status options install-service; do [[ "$output" == *"  $command "* ]]; done
}

@test "--version prints the version in version.txt" {
  run builder "$IMAGE" --version
  [ "$status" -eq 0 ]
  [ "$output" = "devcontainer-builder, version $(cat "$BATS_TEST_DIRNAME/../../builder/version.txt")" ]
}

@test "subcommands pass through with their flags: up --help" {
  run builder "$IMAGE" up --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"Exit codes:"* ]]
  [[ "$output" == *"--workspace-folder FOLDER"* ]]
}

@test "subcommands pass through: options lists every setting of docs/configuration.md" {
  run builder "$IMAGE" options
  [ "$status" -eq 0 ]
  [[ "${lines[0]}" == "DEVCONTAINER_BUILDER_MODE  (environment only)  [default: up]" ]]
  for variable in $(grep -o '^| `[A-Z_]*`' "$BATS_TEST_DIRNAME/../../docs/configuration.md" | tr -d '|` '); do
    [[ "$output" == *"$variable "* ]] || { echo "missing: $variable"; return 1; }
  done
}

@test "flags win over the environment in passed-through commands" {
  run builder -e DEVCONTAINER_BUILD_TIMEOUT=soon "$IMAGE" up --repository https://example.invalid/a.git --build-timeout 10 \
    --state-dir /srv/not-writable
  [ "$status" -eq 2 ]
  [[ "$output" != *"DEVCONTAINER_BUILD_TIMEOUT"* ]]
  [[ "$output" == *"state dir /srv/not-writable cannot be written"* ]]
}

@test "status with no build yet: exit 1 and says so" {
  run builder -v "$STATE:/state" "$IMAGE" status --state-dir /state
  [ "$status" -eq 1 ]
  [[ "$output" == *"no build has run yet"* ]]
}

@test "status of a running workspace: exit 0, human and --json" {
  printf '{"status": "running", "fallback": false, "container_id": "0123456789abcdef", "workspace_folder": "/workspaces/app"}\n' \
    >"$STATE/state.json"
  printf '{"time": "2026-11-22T10:00:00Z", "kind": "container_running", "container_id": "0123456789abcdef"}\n' \
    >"$STATE/events.jsonl"
  run builder -v "$STATE:/state" "$IMAGE" status --state-dir /state
  [ "$status" -eq 0 ]
  [[ "$output" == *"running"* ]]
  [[ "$output" == *"0123456789ab"* ]]
  run builder -v "$STATE:/state" -e DEVCONTAINER_STATE_DIR=/state "$IMAGE" status --json
  [ "$status" -eq 0 ]
  [ "$(printf '%s' "$output" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["status"])')" = running ]
}

@test "status of a degraded workspace: exit 0; of a failed one: exit 1" {
  printf '{"status": "degraded", "fallback": true, "error": {"step": "config", "message": "bad json"}}\n' >"$STATE/state.json"
  run builder -v "$STATE:/state" "$IMAGE" status --state-dir /state
  [ "$status" -eq 0 ]
  [[ "$output" == *"[config] bad json"* ]]
  printf '{"status": "failed", "error": {"step": "clone", "message": "unreachable"}}\n' >"$STATE/state.json"
  run builder -v "$STATE:/state" "$IMAGE" status --state-dir /state
  [ "$status" -eq 1 ]
}

@test "SIGTERM reaches the builder through tini: a hanging clone stops with exit 1 and a recorded state" {
  gateway=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}')
  [ -n "$gateway" ] || gateway=172.17.0.1
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
  # a black hole: accepts connections and never answers, so git's clone hangs
  python3 -c "import socket,time; s=socket.socket(); s.bind(('$gateway', $port)); s.listen(8); time.sleep(60)" &
  hole=$!
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/$gateway/$port") 2>/dev/null && break; sleep 0.1; done
  container=$(docker run -d -v "$STATE:/state" -e DEVCONTAINER_STATE_DIR=/state \
    -e DEVCONTAINER_REPOSITORY="http://$gateway:$port/app.git" "$IMAGE")
  for _ in $(seq 1 50); do grep -q Cloning "$STATE/build.log" 2>/dev/null && break; sleep 0.2; done
  docker stop -t 20 "$container" >/dev/null
  code=$(docker inspect -f '{{.State.ExitCode}}' "$container")
  logs=$(docker logs "$container" 2>&1)
  docker rm -f "$container" >/dev/null
  kill "$hole"
  [ "$code" -eq 1 ]
  [[ "$logs" == *"stopped by SIGTERM"* ]]
  grep -q '"status": "failed"' "$STATE/state.json"
  grep -q '"step": "terminated"' "$STATE/state.json"
}

@test "serve in the image: page and API on the address given, short status, docker stop ends it within 5 s with exit 0" {
  printf '{"status": "degraded", "fallback": true, "error": {"step": "build", "message": "apt failed"}}\n' >"$STATE/state.json"
  container=$(docker run -d -v "$STATE:/state" -e DEVCONTAINER_STATE_DIR=/state \
    -e DEVCONTAINER_REPOSITORY=https://example.com/app.git -e DEVCONTAINER_BUILDER_MODE=serve \
    -e DEVCONTAINER_SERVE_ADDRESS=0.0.0.0:7480 -e DEVCONTAINER_SERVE_HOSTS=workspace.example "$IMAGE")
  address=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$container")
  for _ in $(seq 1 50); do fetch "http://$address:7480/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  # reached by the name the admin listed (a DNS name of that address)
  status_json=$(fetch "http://$address:7480/api/status" workspace.example:7480)
  page=$(fetch "http://$address:7480/" workspace.example:7480)
  foreign=$(fetch "http://$address:7480/api/status" evil.example 2>&1 || true)
  short=$(docker exec "$container" devcontainer-builder status --short --state-dir /state)
  # the 5 s grace is the contract: a serve still running after it is SIGKILLed (exit 137)
  docker stop -t 5 "$container" >/dev/null
  code=$(docker inspect -f '{{.State.ExitCode}}' "$container")
  docker rm -f "$container" >/dev/null
  [ "$(printf '%s' "$status_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" = degraded ]
  [[ "$page" == *'src="static/app.js"'* ]]
  [[ "$foreign" == *"421"* ]]
  [ "$short" = "degraded: build failed" ]
  [ "$code" -eq 0 ]
  [ ! -e "$STATE/serve.json" ]
}
