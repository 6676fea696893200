"""What runs inside the container for the editor: fixed scripts given their values as arguments, run
with `docker exec` as root (the probe, unpacking the tree into the volume) or as the remote user
(extensions, machine settings, code-server itself)."""

from __future__ import annotations

ROOT = "/opt/devcontainer-builder/ide"  # a named volume of the workspace (additions.py), or a plain folder
ADDRESS = "127.0.0.1:13337"
MIN_GLIBC = (2, 34)

# as root: `glibc <version>|none` and `tree <its marker>|missing`; makes the shared extensions folder the
# remote user's. The marker holds a secret of the builder's (never in an image): a tree an image brought
# along - a new volume is filled from the image's folder - is not taken for the builder's
PROBE = r"""
set -u
root=$1 key=$2 user=$3
v=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
echo "glibc ${v:-none}"
if [ -f "$root/$key/.complete" ] && [ -x "$root/$key/bin/code-server" ]; then
  echo "tree $(head -c 100 "$root/$key/.complete" | tr -cd '0-9a-f')"
else
  echo "tree missing"
fi
mkdir -p "$root/extensions" || exit 6
if [ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ]; then chown "$user" "$root/extensions" || exit 6; fi
chmod 0755 "$root" "$root/extensions"
"""

# as root: the copied tarball unpacked into ROOT/<key>, made visible only once complete
UNPACK = r"""
set -eu
root=$1 key=$2 tarball=$3 marker=$4
command -v tar >/dev/null 2>&1 || { echo "the image has no tar to unpack code-server with" >&2; exit 3; }
rm -rf "$root/$key.partial"
mkdir -p "$root/$key.partial"
tar -xzf "$tarball" -C "$root/$key.partial" --strip-components=1 --no-same-owner
rm -f "$tarball"
if [ ! -x "$root/$key.partial/bin/code-server" ]; then
  echo "the tarball has no <folder>/bin/code-server (code-server's release layout)" >&2
  exit 4
fi
echo "$marker" > "$root/$key.partial/.complete"
chmod 0600 "$root/$key.partial/.complete"
rm -rf "$root/$key"
mv "$root/$key.partial" "$root/$key"
for old in "$root"/????????????????; do [ "$old" = "$root/$key" ] || rm -rf "$old"; done
"""

# as the remote user: the machine settings (stdin), never the user's own settings.json
MACHINE_SETTINGS = r"""
set -eu
dir="${XDG_DATA_HOME:-$HOME/.local/share}/code-server/Machine"
mkdir -p "$dir"
cat > "$dir/settings.json.tmp"
mv "$dir/settings.json.tmp" "$dir/settings.json"
echo "$dir/settings.json"
"""

# as the remote user: start code-server once (a pid file, a start lock and a look at the process make a
# second start find the first), in a session of its own so that it outlives the exec and the builder;
# then, when it started it, wait (bounded) until one of its processes listens on the port and /healthz
# answers. Prints `started|running|exited|unhealthy|taken|busy <pid> <log>`.
# A process is known by its pid and its start time (clock ticks since the host's boot): after a restart
# of the container pids count from 1 again, so a lock or pid file naming a pid alone would be trusted
# for a stranger. A port some other process listens on is `taken`: its /healthz is not code-server's.
START = r"""
set -u
bin=$1 ext=$2 folder=$3 address=$4 wait=$5
dir="${HOME:-/tmp}/.cache/devcontainer-builder/code-server"
mkdir -p "$dir" 2>/dev/null || dir="/tmp/devcontainer-builder-code-server-$(id -u)"
mkdir -p "$dir" && chmod 0700 "$dir" || { echo "failed - -"; exit 6; }
log="$dir/code-server.log"
field() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk -v n="$2" '{print $n}'; }  # after pid and comm
since() { field "$1" 20; }
code_server() { tr '\000' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q -e 'code-server' -e 'entry.js'; }
alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  [ -z "${2:-}" ] || [ "$(since "$1")" = "$2" ] || return 1
  code_server "$1"
}
taken() {
  echo "the port ${address##*:} is taken by another process in the container: code-server cannot listen" >&2
  echo "taken $1 $log"
}
hexport=$(printf '%04X' "${address##*:}")
listeners() {
  awk -v p=":$hexport" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p {print $10}' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
family() {
  for s in /proc/[0-9]*/stat; do sed -n 's/^\([0-9]*\) .*) [^ ]* \([0-9]*\) .*/\1 \2/p' "$s" 2>/dev/null; done |
    awk -v root="$1" '{ up[$1] = $2 } END { for (p in up) { q = p
      for (n = 0; n < 64 && q != "" && q != 0; n++) { if (q == root) { print p; break }; q = up[q] } } }'
}
ours() {
  inodes=$(listeners)
  [ -n "$inodes" ] || return 1
  for p in $(family "$1"); do
    for fd in /proc/"$p"/fd/*; do
      link=$(readlink "$fd" 2>/dev/null) || continue
      for i in $inodes; do [ "$link" = "socket:[$i]" ] && return 0; done
    done
  done
  return 1
}
orphans() {  # a dead instance's code-server processes: setsid made its pid their session's id
  for s in /proc/[0-9]*/stat; do
    p=${s#/proc/}; p=${p%/stat}
    [ "$(field "$p" 4)" = "$1" ] && code_server "$p" && echo "$p"
  done
}
lock="$dir/start.lock"
if ! mkdir "$lock" 2>/dev/null; then
  hpid='' hsince=''
  read -r hpid hsince < "$lock/owner" 2>/dev/null || true
  if [ -n "$hsince" ] && [ "$(since "$hpid")" = "$hsince" ]; then echo "busy $hpid $log"; exit 4; fi
  rm -rf "$lock"
  mkdir "$lock" || { echo "busy - $log"; exit 4; }
fi
echo "$$ $(since $$)" > "$lock/owner"
trap 'rm -rf "$lock"' EXIT
pid='' started_at=''
read -r pid started_at < "$dir/code-server.pid" 2>/dev/null || true
status=running
if ! alive "$pid" "$started_at"; then
  # code-server serves from a child that outlives a killed parent for a while: end what is left of the
  # dead instance, so that its port is free and its answers are not taken for the new one's
  left=''
  [ -z "$pid" ] || left=$(orphans "$pid")
  if [ -n "$left" ]; then
    # shellcheck disable=SC2086 # one pid per word
    kill -KILL $left 2>/dev/null
    n=0
    while [ -n "$(listeners)" ] && [ "$n" -lt 25 ]; do sleep 0.2 2>/dev/null || sleep 1; n=$((n + 1)); done
  fi
  if [ -n "$(listeners)" ]; then
    taken -
    exit 7
  fi
  [ -d "$folder" ] || folder="${HOME:-/}"
  : > "$log"
  if command -v setsid >/dev/null 2>&1; then
    setsid "$bin" --auth none --bind-addr "$address" --disable-telemetry --disable-update-check \
      --extensions-dir "$ext" "$folder" < /dev/null >> "$log" 2>&1 &
  else
    nohup "$bin" --auth none --bind-addr "$address" --disable-telemetry --disable-update-check \
      --extensions-dir "$ext" "$folder" < /dev/null >> "$log" 2>&1 &
  fi
  pid=$!
  echo "$pid $(since "$pid")" > "$dir/code-server.pid"
  status=started
fi
tree=$(dirname "$(dirname "$bin")")
node=
for n in "$tree/lib/node" "$tree/node_modules/code-server/lib/node"; do [ -x "$n" ] && node=$n && break; done
if [ "$status" = started ] && [ -n "$node" ]; then
  end=$(( $(date +%s) + wait ))
  healthy=no
  while alive "$pid" && [ "$(date +%s)" -le "$end" ]; do
    if ours "$pid"; then healthy=listening; break; fi
    sleep 0.2 2>/dev/null || sleep 1
  done
  if [ "$healthy" = listening ]; then
    left=$(( end - $(date +%s) )); [ "$left" -gt 1 ] || left=1
    "$node" -e '
      const [url, wait] = [process.argv[1], Number(process.argv[2])];
      const end = Date.now() + wait * 1000;
      const http = require("http");
      const once = () => http.get(url, (r) => { r.resume(); if (r.statusCode === 200) process.exit(0); again(); })
        .on("error", again).setTimeout(2000, function () { this.destroy(); });
      const again = () => (Date.now() > end ? process.exit(1) : setTimeout(once, 100));
      once();' "http://$address/healthz" "$left" && healthy=yes
  fi
  if [ "$healthy" != yes ]; then
    if alive "$pid"; then
      echo "unhealthy $pid $log"
    elif [ -n "$(listeners)" ]; then
      taken "$pid"
    else
      echo "exited $pid $log"
    fi
    tail -n 20 "$log" >&2
    exit 5
  fi
fi
echo "$status $pid $log"
"""
