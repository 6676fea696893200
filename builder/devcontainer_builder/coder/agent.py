"""Start Coder's agent inside the devcontainer: as the remote user, once, with the token in its
environment only.

One `docker exec -i` runs LAUNCHER (a fixed script) as the remote user. Its stdin carries the token and
the URL (one line each) and then the init script: the token is in no process's arguments, in no
environment but the agent's own (not even the docker client's), and not in the container's
configuration. The init script is written, behind a guard, to a private folder (0700) in the user's
home; it holds no token.
The agent is started in a session of its own, so it outlives the exec and the builder, with its output in
agent.log next to it. A start lock and a pid check make every later start - a rerun, a rebuild, the user
running init.sh again - find the live agent and refuse to start a second one; a dead agent is started
again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from devcontainer_builder.system import proc

START_TIMEOUT = 60.0
# Exit codes of LAUNCHER: 0 started or already running (first word of stdout says which), 3 no tool to
# download the agent with, 4 another start holds the lock, 5 the agent exited at once, 6 no folder.
LAUNCHER = r"""
set -u
umask 077
IFS= read -r CODER_AGENT_TOKEN || exit 7
IFS= read -r CODER_AGENT_URL || exit 7
export CODER_AGENT_TOKEN CODER_AGENT_URL
dir="${HOME:-/tmp}/.cache/devcontainer-builder/agent"
mkdir -p "$dir" 2>/dev/null || dir="/tmp/devcontainer-builder-agent-$(id -u)"
mkdir -p "$dir" && chmod 0700 "$dir" || { echo "failed - $dir"; exit 6; }
alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  tr '\000' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q -e 'init.sh' -e ' agent'
}
lock="$dir/start.lock"
if ! mkdir "$lock" 2>/dev/null; then
  holder=$(cat "$lock/pid" 2>/dev/null || true)
  if [ -n "$holder" ] && kill -0 "$holder" 2>/dev/null; then echo "busy $holder $dir"; exit 4; fi
  rm -rf "$lock"
  mkdir "$lock" || { echo "busy - $dir"; exit 4; }
fi
echo $$ > "$lock/pid"
trap 'rm -rf "$lock"' EXIT
pid=$(cat "$dir/agent.pid" 2>/dev/null || true)
if alive "$pid"; then echo "running $pid $dir"; exit 0; fi
if ! command -v curl >/dev/null 2>&1 && ! command -v wget >/dev/null 2>&1 && ! command -v busybox >/dev/null 2>&1; then
  echo "no-downloader - $dir"; exit 3
fi
{
  cat <<'GUARD'
# devcontainer-builder: one Coder agent per container; this refuses to start a second one.
_dcb_dir=$(dirname "$0"); _dcb_pid=$(cat "$_dcb_dir/agent.pid" 2>/dev/null || true)
if [ -n "$_dcb_pid" ] && [ "$_dcb_pid" != "$$" ] && kill -0 "$_dcb_pid" 2>/dev/null &&
  tr '\000' ' ' < "/proc/$_dcb_pid/cmdline" 2>/dev/null | grep -q -e init.sh -e ' agent'; then
  echo "a Coder agent already runs in this container (pid $_dcb_pid): not starting another" >&2; exit 0
fi
echo $$ > "$_dcb_dir/agent.pid"
: > "$_dcb_dir/agent.past-guard"
GUARD
  cat
} > "$dir/init.sh" || { echo "failed - $dir"; exit 6; }
chmod 0700 "$dir/init.sh"
: > "$dir/agent.log"
rm -f "$dir/agent.past-guard"
if command -v setsid >/dev/null 2>&1; then
  setsid sh "$dir/init.sh" < /dev/null >> "$dir/agent.log" 2>&1 &
else
  nohup sh "$dir/init.sh" < /dev/null >> "$dir/agent.log" 2>&1 &
fi
pid=$!
echo "$pid" > "$dir/agent.pid"
# once past the guard (however long a busy machine takes to get there, at most 1 s), an init script that
# fails at once (a shell error, a missing tool) is gone within 0.1 s; Coder's own retries its download for
# ever, and serve's keep-alive sees a later death (every `up` waited 0.5 s here before)
n=0
while [ ! -e "$dir/agent.past-guard" ] && alive "$pid" && [ "$n" -lt 50 ]; do
  sleep 0.02 2>/dev/null || break
  n=$((n + 1))
done
sleep 0.1 2>/dev/null || sleep 1
if alive "$pid"; then echo "started $pid $dir"; exit 0; fi
echo "exited $pid $dir"
tail -n 30 "$dir/agent.log" >&2
exit 5
"""


@dataclass(frozen=True)
class Started:
    status: str  # started, running (was already), no-downloader, exited, busy, failed
    pid: str
    folder: str  # the agent's folder inside the container: init.sh, agent.log, agent.pid
    detail: str  # the agent's last output lines when it did not stay up

    @property
    def ok(self) -> bool:
        return self.status in ("started", "running")

    @property
    def log(self) -> str:
        return f"{self.folder}/agent.log" if self.folder else ""


def start(
    docker: str,
    docker_env: Mapping[str, str],
    *,
    container: str,
    user: str,
    init_script: str,
    agent_url: str,
    agent_token: str,
) -> Started:
    argv = [docker, "exec", "-i"]
    if user:
        argv += ["-u", user]
    argv += [container, "sh", "-c", LAUNCHER, "sh"]
    stdin = f"{agent_token}\n{agent_url}\n{init_script}".encode()
    result = proc.run(argv, timeout=START_TIMEOUT, env=docker_env, stdin_data=stdin)
    words = (result.stdout.strip().splitlines() or [""])[-1].split(" ", 2)
    if result.timed_out:
        return Started("failed", "", "", f"starting the agent did not finish within {START_TIMEOUT:.0f} s")
    if len(words) == 3 and words[0] in ("started", "running", "no-downloader", "exited", "busy", "failed"):
        status, pid, folder = words
        return Started(status, "" if pid == "-" else pid, folder, result.stderr.strip())
    return Started(
        "failed", "", "", proc.last_line(result.stderr) if result.stderr.strip() else f"exit {result.returncode}"
    )
