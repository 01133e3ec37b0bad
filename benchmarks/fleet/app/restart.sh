#!/bin/sh
# The benchmark app's restart command, the same for every tool:
#   sh /srv/bench/app/current/restart.sh
# Stops the server of the previous release (pid file), then starts this release's static HTTP
# server detached, bound to this host's own loopback address (/srv/bench/addr) on the
# benchmark's port (/srv/bench/port). busybox httpd when the host has it, else python3.
set -eu
APP=/srv/bench/app
PIDFILE="$APP/server.pid"
ADDR="$(cat /srv/bench/addr)"
PORT="$(cat /srv/bench/port)"
RELEASE="$(readlink -f "$APP/current")"

# alive PID: the process exists and is not a zombie (an exited server whose reaping is late
# holds no port, and `kill -0` would still succeed on it).
alive() {
  state="$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)"
  [ -n "$state" ] && [ "$state" != Z ]
}

if [ -s "$PIDFILE" ]; then
  pid="$(cat "$PIDFILE")"
  # Only our own server: a pid reused by something else is left alone.
  if grep -qa -e httpd -e http.server "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    i=0
    while alive "$pid" && [ "$i" -lt 100 ]; do
      sleep 0.05
      i=$((i + 1))
    done
  fi
  rm -f "$PIDFILE"
fi

if command -v busybox >/dev/null 2>&1; then
  setsid busybox httpd -f -p "$ADDR:$PORT" -h "$RELEASE" </dev/null >"$APP/server.log" 2>&1 &
else
  setsid python3 -m http.server "$PORT" --bind "$ADDR" --directory "$RELEASE" \
    </dev/null >"$APP/server.log" 2>&1 &
fi
echo "$!" >"$PIDFILE"
