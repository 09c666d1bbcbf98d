# Shared by scripts/test.sh and scripts/bench.sh: a work folder removed on exit, and a
# PostgreSQL and a Redis of our own on free loopback ports, stopped on exit. The caller
# defines log() and die() first. Sourced, not run.

work=$(mktemp -d "${TMPDIR:-/tmp}/rbac-work.XXXXXX")
chmod 755 "$work"
# Everything run from here on puts its temp files in the work folder, so they go with it.
mkdir -m 1777 "$work/tmp"
pg_ctl_bin=""
pg_data=""
redis_pid=""
compose_up=""
# More cleanup for the caller to add: commands run first on exit.
on_exit=()

cleanup() {
    local status=$?
    local command
    for command in "${on_exit[@]}"; do
        eval "$command" || true
    done
    if [ -n "$pg_data" ]; then
        as_postgres "$pg_ctl_bin" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
    fi
    if [ -n "$redis_pid" ]; then
        kill "$redis_pid" 2>/dev/null || true
    fi
    if [ -n "$compose_up" ]; then
        docker compose -p rbac-test down -v >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

is_root() { [ "$(id -u)" = 0 ]; }

# PostgreSQL refuses to run as root; as root, run it as the postgres user.
as_postgres() {
    if is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Below the kernel's ephemeral range: a port there is never the local end of some client's
# connection, whose TIME_WAIT would keep a server from listening on it for a minute.
free_port() {
    local port low=32768
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    [ "$low" -gt 12000 ] || low=32768
    for _ in $(seq 1 100); do
        port=$((10000 + RANDOM % (low - 10000)))
        if ! port_in_use "$port"; then
            echo "$port"
            return
        fi
    done
    die "no free loopback port found"
}

apt_updated=""
apt_install() {
    is_root && command -v apt-get >/dev/null || return 1
    if [ -z "$apt_updated" ]; then
        log "apt-get update"
        apt-get update -qq >/dev/null
        apt_updated=1
    fi
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

find_pg_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) /usr/local/pgsql/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
    fi
}

have_docker_engine() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

start_postgres() {
    local bin=$1 port
    port=$(free_port)
    pg_ctl_bin="$bin/pg_ctl"
    pg_data="$work/pg/data"
    mkdir -p "$work/pg"
    if is_root; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$work/pg" postgres
        chown -R postgres "$work/pg"
    fi
    as_postgres "$bin/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 --no-sync >"$work/pg/initdb.log" 2>&1 \
        || { cat "$work/pg/initdb.log" >&2; die "initdb failed"; }
    as_postgres "$bin/pg_ctl" -D "$pg_data" -l "$work/pg/server.log" -w -t 60 \
        -o "-p $port -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=500 ${PG_EXTRA_OPTIONS:-}" \
        start >/dev/null || { cat "$work/pg/server.log" >&2; die "PostgreSQL did not start"; }
    export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    # The fault-injection tests start private servers from the same binaries.
    export TEST_PG_BIN="$bin"
    log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

start_redis() {
    local bin=$1 port
    port=$(free_port)
    "$bin" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --pidfile "$work/redis.pid" --dir "$work" --logfile "$work/redis.log" \
        || die "Redis did not start"
    for _ in $(seq 1 100); do
        [ -s "$work/redis.pid" ] && port_in_use "$port" && break
        sleep 0.05
    done
    redis_pid=$(cat "$work/redis.pid")
    export TEST_REDIS_URL="redis://127.0.0.1:$port"
    export TEST_REDIS_SERVER="$bin"
    log "Redis $("$bin" --version | awk '{print $3}') on 127.0.0.1:$port"
}

# PostgreSQL and Redis for the tests, exported as TEST_DATABASE_URL and TEST_REDIS_URL: the
# ones given in those variables, else this machine's binaries (installed with apt-get when
# missing and root), else docker compose.
provide_services() {
    if [ -n "${TEST_DATABASE_URL:-}" ] && [ -n "${TEST_REDIS_URL:-}" ]; then
        log "using the servers given in TEST_DATABASE_URL and TEST_REDIS_URL"
    else
        pg_bin=$(find_pg_bin)
        if [ -z "$pg_bin" ] && ! have_docker_engine; then
            apt_install postgresql || true
            pg_bin=$(find_pg_bin)
        fi
        redis_bin=$(command -v redis-server || true)
        if [ -z "$redis_bin" ] && ! have_docker_engine; then
            apt_install redis-server || true
            redis_bin=$(command -v redis-server || true)
        fi
        if [ -n "$pg_bin" ] && [ -n "$redis_bin" ]; then
            start_postgres "$pg_bin"
            start_redis "$redis_bin"
        elif have_docker_engine; then
            pg_port=$(free_port)
            redis_port=$(free_port)
            log "starting PostgreSQL and Redis with docker compose"
            compose_up=1
            POSTGRES_PORT=$pg_port REDIS_PORT=$redis_port \
                docker compose -p rbac-test up -d --wait postgres redis
            export TEST_DATABASE_URL="postgres://rbac:rbac@127.0.0.1:$pg_port/rbac"
            export TEST_REDIS_URL="redis://127.0.0.1:$redis_port"
        else
            die "PostgreSQL and Redis are needed: install them (apt-get install postgresql redis-server), run as root so this script can, start a Docker engine, or set TEST_DATABASE_URL and TEST_REDIS_URL"
        fi
    fi
}

# This machine's PostgreSQL and Redis binaries, installed with apt-get when missing and root;
# started like provide_services does. For what needs the local tools (pgbench).
start_local_services() {
    local pg_bin redis_bin
    pg_bin=$(find_pg_bin)
    [ -n "$pg_bin" ] || { apt_install postgresql || true; pg_bin=$(find_pg_bin); }
    redis_bin=$(command -v redis-server || true)
    [ -n "$redis_bin" ] || { apt_install redis-server || true; redis_bin=$(command -v redis-server || true); }
    [ -n "$pg_bin" ] && [ -n "$redis_bin" ] \
        || die "PostgreSQL and Redis are needed: apt-get install postgresql redis-server"
    start_postgres "$pg_bin"
    start_redis "$redis_bin"
}
