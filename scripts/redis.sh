#!/usr/bin/env bash
# Gives mcpgate's tests a real, throwaway Redis, from Debian's packages,
# listening only on 127.0.0.1, with no persistence.
#
#   eval "$(scripts/redis.sh [DIR])"   start a server in DIR (default: a new
#                                      mktemp directory) and export
#                                      MCPGATE_TEST_REDIS_URL
#   scripts/redis.sh stop DIR          stop it (DIR is kept; rm -rf it when done)
#
# Starting prints exactly one line on stdout,
#   export MCPGATE_TEST_REDIS_URL=redis://127.0.0.1:PORT/0
# and everything else on stderr. Run again on a DIR whose server is running,
# it only prints that line; on a stopped one, it starts it again on the same
# port.
#
# It installs the Debian package redis-server when there is no redis-server
# (apt-get, so root). DIR holds redis.conf, the pid file redis.pid and the
# log redis.log.
#
# Environment: REDIS_PORT, the port (default 56379, or the next free one
# after it). The server is for tests: it saves nothing to disk.
set -euo pipefail

log() { printf 'redis.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

install_redis() {
  [ "$(id -u)" = 0 ] || die "Redis is not installed and installing it needs root (apt-get install redis-server)"
  command -v apt-get >/dev/null || die "Redis is not installed and there is no apt-get; install redis-server"
  export DEBIAN_FRONTEND=noninteractive
  log "installing Redis (apt-get update, then apt-get install redis-server)"
  apt-get update -qq >&2
  # Debian's package starts its own service on port 6379 where there is an
  # init system; the tests use only the throwaway one, so stop it again.
  apt-get install -y -qq --no-install-recommends redis-server >&2
  if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
    systemctl stop redis-server >&2 || true
    systemctl disable redis-server >&2 2>/dev/null || true
  fi
}

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# pong reports whether the Redis on 127.0.0.1:$1 answers PING, within 2 s.
pong() {
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "PING\r\n" >&3
    IFS= read -r reply <&3
    [ "${reply%$'\''\r'\''}" = "+PONG" ]' _ "$1" 2>/dev/null
}

# server_pid prints the pid in $dir/redis.pid when that process is alive.
server_pid() {
  local pid
  [ -f "$dir/redis.pid" ] || return 1
  pid=$(cat "$dir/redis.pid")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# running reports whether the server of $dir is up and answering.
running() { server_pid >/dev/null && pong "$(configured_port)"; }

# configured_port prints the port the server in $dir was set up with.
configured_port() { sed -n 's/^port \([0-9]*\).*/\1/p' "$dir/redis.conf" | tail -n 1; }

print_url() { echo "export MCPGATE_TEST_REDIS_URL=redis://127.0.0.1:$1/0"; }

stop() {
  [ -n "${1:-}" ] || die "usage: scripts/redis.sh stop DIR"
  dir="$1"
  local pid
  if ! pid=$(server_pid); then
    log "no server is running in $dir"
    return
  fi
  log "stopping the server in $dir (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$dir/redis.pid"; return; }
    sleep 0.1
  done
  log "it did not stop within 10 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/redis.pid"
}

start() {
  dir="${1:-}"
  command -v redis-server >/dev/null || { install_redis; command -v redis-server >/dev/null || die "installed redis-server, but there is no redis-server command"; }
  if [ -z "$dir" ]; then
    dir=$(mktemp -d -t mcpgate-redis.XXXXXX)
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)

  if [ -f "$dir/redis.conf" ] && running; then
    port=$(configured_port)
    log "the server in $dir is already running on 127.0.0.1:$port"
    print_url "$port"
    return
  fi

  if [ ! -f "$dir/redis.conf" ]; then
    port=$(pick_port 56379 REDIS_PORT) || exit 1
    # Loopback only, no Unix socket, nothing saved: a server for tests.
    cat >"$dir/redis.conf" <<EOF
# scripts/redis.sh: a throwaway server for tests.
bind 127.0.0.1
protected-mode yes
port $port
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
dir $dir
save ""
appendonly no
EOF
  else
    port=$(configured_port)
    [ -n "$port" ] || die "$dir/redis.conf is not one this script made; choose another DIR"
    ! port_in_use "$port" || die "port $port, where the server in $dir listens, is in use"
  fi

  # A port can be taken between the check and the bind: then try the next
  # free one, three times.
  local attempt started
  for attempt in 1 2 3; do
    log "starting $(redis-server --version | cut -d' ' -f1-3) on 127.0.0.1:$port (log: $dir/redis.log)"
    rm -f "$dir/redis.pid"
    redis-server "$dir/redis.conf" >&2 || true
    started=""
    for _ in $(seq 1 50); do
      if running; then started=1; break; fi
      sleep 0.1
    done
    [ -z "$started" ] || break
    log "Redis did not start; the end of its log:"
    tail -n 15 "$dir/redis.log" >&2 || true
    [ "$attempt" -lt 3 ] || die "Redis did not start; see $dir/redis.log"
    [ -z "${REDIS_PORT:-}" ] || die "Redis did not start on port $REDIS_PORT (REDIS_PORT)"
    port=$((port + 1))
    while port_in_use "$port"; do port=$((port + 1)); done
    echo "port $port" >>"$dir/redis.conf"
  done
  log "ready; stop it with: scripts/redis.sh stop $dir"
  print_url "$port"
}

case "${1:-}" in
  stop) stop "${2:-}" ;;
  -h | --help | help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) start "${1:-}" ;;
esac
