#!/usr/bin/env bash
# scripts/services.sh: make sure the Redis and PostgreSQL that the tests use are
# reachable on loopback, installing (Debian) and starting them when they are not.
#
#   Redis       127.0.0.1:6379 (no persistence)
#   PostgreSQL  127.0.0.1:5432, user postgres, database "test", trust auth over TCP
#               from loopback (DSN: postgres://postgres@127.0.0.1:5432/test?sslmode=disable)
#
# Idempotent and cheap when both already answer. Failing to get either one up is
# a hard error with the reason: tests that need them never silently skip.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

REDIS_HOST=127.0.0.1
REDIS_PORT=${SERVICES_REDIS_PORT:-6379} # override only to test this script
PG_HOST=127.0.0.1
PG_PORT=5432
PG_DB=test

say() { printf 'services: %s\n' "$*" >&2; }
fail() {
    printf 'services: ERROR: %s\n' "$*" >&2
    exit 1
}

# tcp_open HOST PORT: something accepts connections there.
tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

redis_ok() {
    if command -v redis-cli >/dev/null; then
        [[ $(timeout 3 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
    else
        # No client: speak the inline protocol ourselves.
        timeout 3 bash -c "exec 3<>/dev/tcp/$REDIS_HOST/$REDIS_PORT && printf 'PING\r\n' >&3 &&
            IFS= read -r line <&3 && [[ \$line == +PONG* ]]" 2>/dev/null
    fi
}

pg_up() {
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 3
    else
        tcp_open "$PG_HOST" "$PG_PORT"
    fi
}

# pg_test_db_ok: the tests' DSN works (user postgres, no password, database test).
pg_test_db_ok() {
    command -v psql >/dev/null || return 1
    PGCONNECT_TIMEOUT=3 psql -X -q -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d "$PG_DB" -Atc 'select 1' \
        >/dev/null 2>&1
}

# wait_for WHAT CHECK...: poll CHECK for up to 30 s.
wait_for() {
    local what=$1 i
    shift
    for i in $(seq 1 60); do
        "$@" && return 0
        sleep 0.5
    done
    return 1
}

APT_UPDATED=0
apt_install() {
    [[ $(id -u) == 0 ]] || fail "$* not installed and not root: install them (apt-get install -y $*) and rerun"
    command -v apt-get >/dev/null || fail "$* not installed and no apt-get: install them by hand"
    if ((!APT_UPDATED)); then
        say "apt-get update"
        apt-get update -q >&2 || fail "apt-get update failed"
        APT_UPDATED=1
    fi
    say "apt-get install -y $*"
    apt-get install -y -q "$@" >&2 || fail "apt-get install -y $* failed"
}

# as_postgres CMD...: run CMD as the postgres OS user (peer auth on the Unix socket).
as_postgres() {
    if [[ $(id -un) == postgres ]]; then
        "$@"
    elif [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        return 1
    fi
}

ensure_redis() {
    if redis_ok; then
        say "redis ok on $REDIS_HOST:$REDIS_PORT"
        return 0
    fi
    tcp_open "$REDIS_HOST" "$REDIS_PORT" &&
        fail "something listens on $REDIS_HOST:$REDIS_PORT but does not answer Redis PING with PONG"
    command -v redis-server >/dev/null || apt_install redis-server
    say "starting redis-server on $REDIS_HOST:$REDIS_PORT"
    # "-::1" binds IPv6 loopback when the machine has it, and is skipped when not.
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no >&2 ||
        fail "redis-server did not start (see its output above)"
    wait_for redis redis_ok || fail "redis-server started but $REDIS_HOST:$REDIS_PORT does not answer PING within 30s"
    say "redis ok on $REDIS_HOST:$REDIS_PORT"
}

pg_version() {
    [[ -d /etc/postgresql ]] || return 1
    local v
    v=$(ls /etc/postgresql | sort -V | tail -n 1)
    [[ -n $v && -d /etc/postgresql/$v/main ]] || return 1
    echo "$v"
}

start_postgres() {
    local v
    if ! command -v pg_ctlcluster >/dev/null || ! pg_version >/dev/null; then
        apt_install postgresql
    fi
    # The package's post-install may already have started it.
    pg_up && return 0
    v=$(pg_version) || fail "postgresql installed but no cluster in /etc/postgresql/*/main (try: pg_createcluster <version> main)"
    say "starting PostgreSQL $v (cluster main)"
    pg_ctlcluster --skip-systemctl-redirect "$v" main start >&2 ||
        pg_up || fail "pg_ctlcluster $v main start failed; see /var/log/postgresql/postgresql-$v-main.log"
    wait_for postgres pg_up || fail "PostgreSQL $v started but $PG_HOST:$PG_PORT is not ready within 30s"
}

# trust_loopback: let any user connect over loopback TCP without a password (test machines only).
trust_loopback() {
    local hba tmp
    hba=$(as_postgres psql -X -Atqc 'show hba_file' 2>/dev/null) ||
        fail "cannot reach PostgreSQL as the postgres OS user to read pg_hba.conf (need root or postgres)"
    if ! grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
        say "adding loopback trust rules at the top of $hba"
        tmp=$(mktemp)
        {
            echo "# added by fulcrum scripts/services.sh: tests connect over loopback without a password"
            echo "host all all 127.0.0.1/32 trust"
            echo "host all all ::1/128 trust"
            cat "$hba"
        } >"$tmp"
        cat "$tmp" >"$hba" # keep the file's owner and mode
        rm -f "$tmp"
        as_postgres psql -X -qc 'select pg_reload_conf()' >/dev/null || fail "cannot reload PostgreSQL after editing $hba"
        sleep 0.5
    fi
}

ensure_postgres() {
    if ! pg_up; then
        tcp_open "$PG_HOST" "$PG_PORT" && ! command -v pg_isready >/dev/null &&
            fail "something listens on $PG_HOST:$PG_PORT but pg_isready is absent to check it"
        start_postgres
    fi
    command -v psql >/dev/null || apt_install postgresql-client
    if pg_test_db_ok; then
        say "postgres ok on $PG_HOST:$PG_PORT (database $PG_DB)"
        return 0
    fi
    # Reachable, but the tests' DSN does not work yet: fix auth, then the database.
    if ! PGCONNECT_TIMEOUT=3 psql -X -q -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
        trust_loopback
    fi
    if ! pg_test_db_ok; then
        say "creating database $PG_DB"
        PGCONNECT_TIMEOUT=3 psql -X -q -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres \
            -c "create database $PG_DB" >&2 ||
            fail "cannot create database $PG_DB as postgres over $PG_HOST:$PG_PORT"
    fi
    pg_test_db_ok || fail "PostgreSQL is up but postgres@$PG_HOST:$PG_PORT/$PG_DB does not accept connections"
    say "postgres ok on $PG_HOST:$PG_PORT (database $PG_DB)"
}

ensure_redis
ensure_postgres
