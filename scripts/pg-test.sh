#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: `start` prints its URL (starting it in
# /tmp/loa-pg-test-<checkout> when it is not already running), `stop` stops it and deletes its files.
# Debian's `postgresql` package provides the binaries (scripts/deps.sh installs it).
# initdb refuses to run as root, so as root the server runs as the `postgres` user.
# Trust authentication on 127.0.0.1 only: the server holds nothing but test data.
set -euo pipefail
cd "$(dirname "$0")/.."
# Outside the checkout: the server runs as `postgres`, which may not be able to enter
# the directory the repository is in (a clone under /root). One server per checkout.
dir="${TMPDIR:-/tmp}/loa-pg-test-$(printf %s "$PWD" | sha256sum | cut -c1-12)"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ]; then
    echo "PostgreSQL is not installed: run scripts/deps.sh (Debian's postgresql package)" >&2
    exit 1
fi
as_owner() {
    # From / : the tools change to their working directory, which `postgres` may not enter.
    if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}
case "${1:-}" in
start)
    if [ -f "$dir/port" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres"
        exit 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    # A free port: the first from 55432 up that nothing answers on.
    port=55432
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c max_connections=400 -c fsync=off -c shared_buffers=64MB" start >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    if [ -d "$dir/data" ]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: scripts/pg-test.sh start|stop" >&2
    exit 2
    ;;
esac
