#!/usr/bin/env bash
# Gives mcpgate's tests a real, throwaway PostgreSQL, from Debian's packages,
# listening only on 127.0.0.1, with trust authentication for loopback.
#
#   eval "$(scripts/postgres.sh [DIR])"   start a cluster in DIR (default: a new
#                                         mktemp directory) and export
#                                         MCPGATE_TEST_POSTGRES_URL
#   scripts/postgres.sh stop DIR          stop it (DIR is kept; rm -rf it when done)
#
# Starting prints exactly one line on stdout,
#   export MCPGATE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
# and everything else on stderr. Run again on a DIR whose cluster is running,
# it only prints that line; on a stopped one, it starts it again.
#
# It installs the Debian package postgresql when no initdb and pg_ctl are under
# /usr/lib/postgresql/*/bin (apt-get, so root), without Debian's default
# cluster. Run as root, the cluster belongs to the postgres user, since
# PostgreSQL refuses to run as root; DIR must be reachable by that user.
#
# Environment: PGPORT, the port (default 55432, or the next free one after it).
# The cluster is for tests: fsync is off, so a crash can lose its data.
set -euo pipefail

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# pg_bindir prints the newest /usr/lib/postgresql/*/bin holding initdb and pg_ctl.
pg_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

install_postgres() {
  [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and installing it needs root (apt-get install postgresql)"
  command -v apt-get >/dev/null || die "PostgreSQL is not installed and there is no apt-get; install PostgreSQL's server binaries"
  export DEBIAN_FRONTEND=noninteractive
  log "installing PostgreSQL (apt-get update, then apt-get install postgresql)"
  apt-get update -qq >&2
  # postgresql-common first, told not to create and start Debian's default
  # cluster on port 5432: the tests need only the throwaway one.
  apt-get install -y -qq --no-install-recommends postgresql-common >&2
  sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
    /etc/postgresql-common/createcluster.conf
  apt-get install -y -qq --no-install-recommends postgresql >&2
}

# as_owner runs a command as the cluster's owner: postgres when run as root.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# running reports whether the cluster in $data is up.
running() { [ -f "$data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

# configured_port prints the port the cluster in $data was set up with.
configured_port() { sed -n 's/^port = \([0-9]*\).*/\1/p' "$data/postgresql.conf" | tail -n 1; }

print_url() {
  echo "export MCPGATE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$1/postgres?sslmode=disable"
}

stop() {
  [ -n "${1:-}" ] || die "usage: scripts/postgres.sh stop DIR"
  data="$1/data"
  bin=$(pg_bindir) || die "PostgreSQL is not installed; nothing to stop"
  if running; then
    log "stopping the cluster in $data"
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >&2
  else
    log "no cluster is running in $data"
  fi
}

start() {
  local dir="${1:-}"
  bin=$(pg_bindir) || { install_postgres; bin=$(pg_bindir) || die "installed postgresql, but found no initdb and pg_ctl under /usr/lib/postgresql"; }
  if [ "$(id -u)" = 0 ]; then
    id -u postgres >/dev/null 2>&1 || die "there is no postgres user to run PostgreSQL as (Debian's postgresql-common creates it)"
  fi
  if [ -z "$dir" ]; then
    dir=$(mktemp -d -t mcpgate-postgres.XXXXXX)
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  data="$dir/data"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    chmod 700 "$dir"
    as_owner test -w "$dir" || die "the postgres user cannot write $dir; choose a directory it can reach, under /tmp for one"
  fi

  if running; then
    port=$(configured_port)
    log "the cluster in $data is already running on 127.0.0.1:$port"
    print_url "$port"
    return
  fi

  if [ ! -f "$data/PG_VERSION" ]; then
    port=$(pick_port 55432 PGPORT) || exit 1
    log "creating a cluster in $data with $("$bin/postgres" --version)"
    as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-locale --no-sync >/dev/null
    # Loopback only, over TCP only: no Unix socket, no other address.
    cat >"$data/pg_hba.conf" <<EOF
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  trust
EOF
    cat >>"$data/postgresql.conf" <<EOF

# scripts/postgres.sh: a throwaway cluster for tests.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  else
    port=$(configured_port)
    [ -n "$port" ] || die "$data holds a cluster this script did not make; choose another DIR"
    ! port_in_use "$port" || die "port $port, where the cluster in $data listens, is in use"
  fi

  # A port can be taken between the check and the bind (or still be held by
  # a cluster that just stopped): then try the next free one, three times.
  local attempt
  for attempt in 1 2 3; do
    log "starting it on 127.0.0.1:$port (log: $dir/postgres.log)"
    if as_owner "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 start >&2; then
      break
    fi
    log "PostgreSQL did not start; the end of its log:"
    tail -n 15 "$dir/postgres.log" >&2 || true
    [ "$attempt" -lt 3 ] || die "PostgreSQL did not start; see $dir/postgres.log"
    [ -z "${PGPORT:-}" ] || die "PostgreSQL did not start on port $PGPORT (PGPORT)"
    port=$((port + 1))
    while port_in_use "$port"; do port=$((port + 1)); done
    echo "port = $port" >>"$data/postgresql.conf"
  done
  for _ in $(seq 1 60); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
      log "ready; stop it with: scripts/postgres.sh stop $dir"
      print_url "$port"
      return
    fi
    sleep 0.5
  done
  die "PostgreSQL started but does not accept connections on 127.0.0.1:$port; see $dir/postgres.log"
}

case "${1:-}" in
  stop) stop "${2:-}" ;;
  -h | --help | help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) start "${1:-}" ;;
esac
