#!/usr/bin/env bash
# A throwaway PostgreSQL server from Debian's packages, for the archive tests.
#
#   bash postgres/pg.sh up            initdb once, start, wait until it accepts connections
#   bash postgres/pg.sh down [--clean] stop; --clean also deletes the data
#   bash postgres/pg.sh status        exit 0 and print the URL if running
#   bash postgres/pg.sh url           print the SQLAlchemy URL of the test database
#
# Environment:
#   PG_PORT   port, default 15432 (never PostgreSQL's default 5432)
#   PG_DIR    data and log folder, default /tmp/socialpulse-pg-$PG_PORT
#
# PostgreSQL refuses to run as root: when run as root, initdb and pg_ctl run as the
# `postgres` OS user, which owns the data folder. Only 127.0.0.1 is bound, no Unix socket
# outside the data folder, and loopback connections are trusted (a test server only).
set -euo pipefail

PORT="${PG_PORT:-15432}"
DIR="${PG_DIR:-/tmp/socialpulse-pg-$PORT}"
DATA="$DIR/data"
LOG="$DIR/server.log"
DB=socialpulse_test

die() { echo "pg.sh: $*" >&2; exit 1; }
info() { echo "pg.sh: $*"; }

[[ "$PORT" =~ ^[0-9]+$ ]] || die "PG_PORT must be a number, got '$PORT'"

bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$dir" && -x "$dir/pg_ctl" ]] || die "PostgreSQL is not installed: apt-get install postgresql"
    echo "$dir"
}

as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

url() { echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/$DB"; }

running() { [[ -f "$DATA/postmaster.pid" ]] && as_owner "$(bindir)/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

cmd_up() {
    local bin
    bin="$(bindir)"
    if running; then
        info "already running: $(url)"
        return 0
    fi
    mkdir -p "$DIR"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres: "$DIR"
    fi
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
        as_owner "$bin/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
    fi
    # Durable commits as in production (fsync stays on): a killed server keeps what it
    # acknowledged, which the archive's fault tests rely on.
    as_owner "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$DATA \
            -c shared_buffers=32MB -c max_connections=60" >/dev/null \
        || { tail -n 30 "$LOG" >&2 || true; die "PostgreSQL did not start"; }
    if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
        as_owner "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB"
    fi
    info "ready: $(url)"
}

cmd_down() {
    local clean=0
    for a in "$@"; do
        case "$a" in
            --clean) clean=1 ;;
            *) die "unknown option for down: $a" ;;
        esac
    done
    if running; then
        as_owner "$(bindir)/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >/dev/null || true
        info "stopped"
    fi
    if (( clean )); then
        rm -rf "$DIR"
        info "removed $DIR"
    fi
}

case "${1:-}" in
    up) cmd_up ;;
    down) shift; cmd_down "$@" ;;
    status) running && url ;;
    url) url ;;
    *) die "usage: pg.sh up | down [--clean] | status | url" ;;
esac
