#!/usr/bin/env bash
# The database lab for end-to-end tests: a private PostgreSQL 15 cluster and a private MariaDB
# server, both on loopback, each with a password-protected superuser `rg`. Installs what is
# missing (apt). Neither touches the system's own clusters (/var/lib/postgresql/15/main,
# /var/lib/mysql): each has its data directory of its own and a port of its own.
#
# Usage: bash scripts/lab/db.sh up|down|status
#   up      install what is missing, create the data directories on first use, start both
#           servers (a server of this checkout that already runs is reused), wait until each
#           answers a query over TCP with the password. Idempotent.
#   down    stop, by pid, the servers `up` started.
#   status  print what runs; non-zero when a server is down or does not answer.
#
# Connection facts (tests read them from lab-run/db/lab.env; passwords never on a command line):
#   PostgreSQL  127.0.0.1:15432  user rg  password in lab-run/db/pg.password   db postgres
#   MariaDB     127.0.0.1:13306  user rg  password in lab-run/db/mariadb.password  db mysql
#   `rg` is a superuser (PostgreSQL) / has ALL PRIVILEGES WITH GRANT OPTION (MariaDB); both
#   servers require the password on TCP (scram-sha-256 / mysql_native_password).
#   A port taken by something else moves to the next free one (written to lab.env).
# Environment: RG_LAB_PG_PORT, RG_LAB_MARIADB_PORT: preferred ports (15432, 13306).
# Logs, pid files, passwords, lab.env: lab-run/db/. Data directories: lab-run/db/postgres/ and
# lab-run/db/mariadb/, or, when the `postgres`/`mysql` users cannot reach lab-run (a checkout
# in a private directory), /var/tmp/releasegate-db-lab-CKSUM/ (named in lab-run/db/data-root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$ROOT/lab-run"
LAB_NAME="db lab"
LAB_SCRIPT="scripts/lab/db.sh"
# shellcheck source=scripts/lab/common.sh
. "$ROOT/scripts/lab/common.sh"
DB_DIR="$RUN_DIR/db"
LAB_HOST="127.0.0.1"
LAB_USER="rg"
PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
PG_WANT_PORT="${RG_LAB_PG_PORT:-15432}"
MARIADB_WANT_PORT="${RG_LAB_MARIADB_PORT:-13306}"
MARIADBD=/usr/sbin/mariadbd
APT_PACKAGES=(postgresql postgresql-client postgresql-contrib mariadb-server mariadb-client)
PG_WAIT=60
MARIADB_WAIT=90

FACTS="$DB_DIR/lab.env"
DATA_ROOT_FILE="$DB_DIR/data-root"
PG_PWFILE="$DB_DIR/pg.password"
PG_PIDFILE="$DB_DIR/postgres.pid"
PG_LOG="$DB_DIR/postgres.log"
PG_PORTFILE="$DB_DIR/postgres.port"
MA_PWFILE="$DB_DIR/mariadb.password"
MA_PIDFILE="$DB_DIR/mariadb.pid"
MA_LOG="$DB_DIR/mariadb.log"
MA_PORTFILE="$DB_DIR/mariadb.port"
APT_LOG="$DB_DIR/apt.log"
LOCK="$DB_DIR/.lock"


# port_taken PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_taken() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$LAB_HOST/$1" 2>/dev/null
}

# pick_port WANT: WANT if free, else the next free port above it.
pick_port() {
  local port="$1"
  while port_taken "$port"; do
    port=$((port + 1))
    [ "$port" -lt $(($1 + 50)) ] || die "no free port in $1..$(($1 + 49)) on $LAB_HOST"
  done
  printf '%s\n' "$port"
}

# as USER CMD...: run CMD as the system user USER (exec, no extra process: pids stay exact).
as() {
  local user="$1"
  shift
  setpriv --reuid="$user" --regid="$user" --init-groups --reset-env "$@"
}

new_password() {
  # 24 characters of [A-Za-z0-9]: no quoting trouble in SQL, option files or URLs.
  local pw=""
  while [ "${#pw}" -lt 24 ]; do
    pw+="$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
  done
  printf '%s\n' "${pw:0:24}"
}

# --- install --------------------------------------------------------------------------------

check_tools() {
  local tool
  for tool in "$PG_BIN/initdb" "$PG_BIN/postgres" "$PG_BIN/pg_isready" "$MARIADBD"; do
    [ -x "$tool" ] || die "$tool is missing after the install"
  done
  for tool in psql pg_dump pg_restore pgbench mariadb mysqldump mysqladmin \
    mariadb-install-db setpriv flock; do
    command -v "$tool" >/dev/null || die "\`$tool\` is missing after the install"
  done
  id postgres >/dev/null 2>&1 || die "no system user postgres (package postgresql-common)"
  id mysql >/dev/null 2>&1 || die "no system user mysql (package mariadb-server)"
}

# --- data root ------------------------------------------------------------------------------

# The data directories must be reachable by the users postgres and mysql, and MariaDB's socket
# path must stay short (108 bytes at most). A checkout under a 0700 directory fails the first.
choose_data_root() {
  local root
  if [ -s "$DATA_ROOT_FILE" ]; then
    DATA_ROOT="$(cat "$DATA_ROOT_FILE")"
    return
  fi
  root="$DB_DIR"
  if [ "${#root}" -gt 80 ] ||
    ! as postgres test -x "$root" 2>/dev/null || ! as mysql test -x "$root" 2>/dev/null; then
    root="/var/tmp/releasegate-db-lab-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
    say "users postgres/mysql cannot reach $DB_DIR (or the path is long): data in $root"
    mkdir -p "$root"
    chmod 0755 "$root"
  fi
  printf '%s\n' "$root" >"$DATA_ROOT_FILE"
  DATA_ROOT="$root"
}

set_paths() {
  PG_ROOT="$DATA_ROOT/postgres"
  PG_DATA="$PG_ROOT/data"
  MA_ROOT="$DATA_ROOT/mariadb"
  MA_DATA="$MA_ROOT/data"
  MA_SOCKET="$MA_ROOT/mariadbd.sock"
  MA_OWN_PIDFILE="$MA_ROOT/mariadbd.pid"
  MA_INIT="$MA_ROOT/init.sql"
}

# --- PostgreSQL -----------------------------------------------------------------------------

pg_env() {
  env -u PGSERVICE -u PGSERVICEFILE PGPASSWORD="$(cat "$PG_PWFILE")" PGCONNECT_TIMEOUT=3 \
    PGPASSFILE=/dev/null "$@"
}

pg_sql() {
  pg_env "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -w -h "$LAB_HOST" -p "$PG_PORT" \
    -U "$LAB_USER" -d postgres -c "$1"
}

pg_answers() {
  [ -n "${PG_PORT:-}" ] || return 1
  "$PG_BIN/pg_isready" -q -h "$LAB_HOST" -p "$PG_PORT" -t 2 2>/dev/null && pg_sql 'SELECT 1' \
    >/dev/null 2>&1
}

# The postmaster of our data directory, if one runs (postmaster.pid's first line).
pg_adopt() {
  if ! alive "$PG_PIDFILE" postgres && [ -s "$PG_DATA/postmaster.pid" ] &&
    alive "$PG_DATA/postmaster.pid" postgres; then
    head -n 1 "$PG_DATA/postmaster.pid" >"$PG_PIDFILE"
    sed -n 4p "$PG_DATA/postmaster.pid" >"$PG_PORTFILE"
  fi
}

pg_init() {
  if [ -s "$PG_DATA/PG_VERSION" ] && [ -s "$PG_PWFILE" ]; then
    return
  fi
  if [ -e "$PG_DATA" ]; then
    say "PostgreSQL data directory without its password file: created again"
    rm -rf "$PG_DATA"
  fi
  new_password >"$PG_PWFILE"
  chmod 0600 "$PG_PWFILE"
  mkdir -p "$PG_ROOT"
  chown postgres:postgres "$PG_ROOT"
  chmod 0700 "$PG_ROOT"
  # initdb reads the password as the user postgres: give it a copy it can read, then remove it.
  install -m 0600 -o postgres -g postgres "$PG_PWFILE" "$PG_ROOT/initdb.pw"
  say "initdb $PG_DATA (superuser $LAB_USER, scram-sha-256 for every connection)"
  if ! as postgres "$PG_BIN/initdb" -D "$PG_DATA" -U "$LAB_USER" --pwfile="$PG_ROOT/initdb.pw" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --no-locale --no-sync \
    >"$PG_LOG" 2>&1; then
    rm -f "$PG_ROOT/initdb.pw"
    die "initdb failed" "$PG_LOG"
  fi
  rm -f "$PG_ROOT/initdb.pw"
}

start_postgres() {
  local pid waited=0
  pg_adopt
  if alive "$PG_PIDFILE" postgres; then
    PG_PORT="$(cat "$PG_PORTFILE" 2>/dev/null || true)"
    if pg_answers; then
      say "PostgreSQL already running on $LAB_HOST:$PG_PORT (pid $(head -n 1 "$PG_PIDFILE"))"
      return
    fi
    die "PostgreSQL runs (pid $(head -n 1 "$PG_PIDFILE")) but does not answer on $LAB_HOST:${PG_PORT:-?} with the lab password" \
      "$PG_LOG"
  fi
  pg_init
  PG_PORT="$(pick_port "$PG_WANT_PORT")"
  [ "$PG_PORT" = "$PG_WANT_PORT" ] ||
    say "port $PG_WANT_PORT is taken (not by this lab): PostgreSQL gets $PG_PORT"
  printf '%s\n' "$PG_PORT" >"$PG_PORTFILE"
  say "starting PostgreSQL $PG_MAJOR on $LAB_HOST:$PG_PORT (log: $PG_LOG)"
  # Only TCP on loopback (no Unix socket); fsync off: the lab's data is disposable.
  spawn "$PG_LOG" setpriv --reuid=postgres --regid=postgres --init-groups --reset-env \
    "$PG_BIN/postgres" -D "$PG_DATA" -c listen_addresses="$LAB_HOST" -c port="$PG_PORT" \
    -c unix_socket_directories= -c fsync=off -c full_page_writes=off \
    -c synchronous_commit=off -c max_connections=60 -c shared_buffers=64MB \
    -c logging_collector=off -c log_line_prefix='%m [%p] %q%u@%d '
  pid=$!
  echo "$pid" >"$PG_PIDFILE"
  until pg_answers; do
    running "$pid" || die "PostgreSQL exited during start" "$PG_LOG"
    [ "$waited" -lt $((PG_WAIT * 5)) ] || die "PostgreSQL did not answer in ${PG_WAIT}s" "$PG_LOG"
    sleep 0.2
    waited=$((waited + 1))
  done
  alive "$PG_PIDFILE" postgres || die "pid $pid is not the postmaster" "$PG_LOG"
  say "PostgreSQL answers after $((waited / 5))s (pid $pid)"
}

# --- MariaDB --------------------------------------------------------------------------------

ma_client() {
  local tool="$1"
  shift
  env -u MYSQL_HOST -u MYSQL_TCP_PORT -u MYSQL_UNIX_PORT MYSQL_PWD="$(cat "$MA_PWFILE")" \
    "$tool" --no-defaults --protocol=TCP -h "$LAB_HOST" -P "$MA_PORT" -u "$LAB_USER" \
    --connect-timeout=3 "$@"
}

ma_sql() { ma_client mariadb -N -B -e "$1"; }

ma_answers() {
  [ -n "${MA_PORT:-}" ] || return 1
  ma_sql 'SELECT 1' >/dev/null 2>&1
}

ma_adopt() {
  if ! alive "$MA_PIDFILE" mariadbd && [ -s "$MA_OWN_PIDFILE" ] &&
    alive "$MA_OWN_PIDFILE" mariadbd; then
    head -n 1 "$MA_OWN_PIDFILE" >"$MA_PIDFILE"
  fi
}

ma_init() {
  if [ -d "$MA_DATA/mysql" ] && [ -s "$MA_PWFILE" ]; then
    return
  fi
  if [ -e "$MA_DATA" ]; then
    say "MariaDB data directory without its password file: created again"
    rm -rf "$MA_DATA"
  fi
  [ -s "$MA_PWFILE" ] || new_password >"$MA_PWFILE"
  chmod 0600 "$MA_PWFILE"
  mkdir -p "$MA_ROOT"
  chown mysql:mysql "$MA_ROOT"
  chmod 0700 "$MA_ROOT"
  say "mariadb-install-db $MA_DATA"
  mariadb-install-db --no-defaults --user=mysql --datadir="$MA_DATA" --skip-test-db \
    --auth-root-authentication-method=socket >"$MA_LOG" 2>&1 ||
    die "mariadb-install-db failed" "$MA_LOG"
}

# The server runs this at every start: the user rg with the current password, all privileges,
# and no anonymous users (they could shadow rg).
write_ma_init() {
  local pw
  pw="$(cat "$MA_PWFILE")"
  install -m 0600 -o mysql -g mysql /dev/null "$MA_INIT"
  cat >"$MA_INIT" <<EOF
CREATE USER IF NOT EXISTS '$LAB_USER'@'$LAB_HOST' IDENTIFIED BY '$pw';
ALTER USER '$LAB_USER'@'$LAB_HOST' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON *.* TO '$LAB_USER'@'$LAB_HOST' WITH GRANT OPTION;
DELETE FROM mysql.global_priv WHERE User = '';
FLUSH PRIVILEGES;
EOF
}

start_mariadb() {
  local pid waited=0
  ma_adopt
  if alive "$MA_PIDFILE" mariadbd; then
    MA_PORT="$(cat "$MA_PORTFILE" 2>/dev/null || true)"
    if ma_answers; then
      say "MariaDB already running on $LAB_HOST:$MA_PORT (pid $(head -n 1 "$MA_PIDFILE"))"
      return
    fi
    die "MariaDB runs (pid $(head -n 1 "$MA_PIDFILE")) but does not answer on $LAB_HOST:${MA_PORT:-?} with the lab password" \
      "$MA_LOG"
  fi
  ma_init
  write_ma_init
  MA_PORT="$(pick_port "$MARIADB_WANT_PORT")"
  [ "$MA_PORT" = "$MARIADB_WANT_PORT" ] ||
    say "port $MARIADB_WANT_PORT is taken (not by this lab): MariaDB gets $MA_PORT"
  printf '%s\n' "$MA_PORT" >"$MA_PORTFILE"
  rm -f "$MA_OWN_PIDFILE"
  say "starting MariaDB on $LAB_HOST:$MA_PORT (log: $MA_LOG)"
  # --no-defaults: none of /etc/mysql applies; errors go to stderr, i.e. the log.
  spawn "$MA_LOG" "$MARIADBD" --no-defaults --user=mysql --datadir="$MA_DATA" \
    --bind-address="$LAB_HOST" --port="$MA_PORT" --socket="$MA_SOCKET" \
    --pid-file="$MA_OWN_PIDFILE" --skip-name-resolve --init-file="$MA_INIT" \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=2 --max-connections=60
  pid=$!
  echo "$pid" >"$MA_PIDFILE"
  until ma_answers; do
    running "$pid" || die "mariadbd exited during start" "$MA_LOG"
    [ "$waited" -lt $((MARIADB_WAIT * 5)) ] ||
      die "MariaDB did not answer in ${MARIADB_WAIT}s" "$MA_LOG"
    sleep 0.2
    waited=$((waited + 1))
  done
  alive "$MA_PIDFILE" mariadbd || die "pid $pid is not mariadbd" "$MA_LOG"
  ma_client mysqladmin --silent ping >/dev/null || die "mysqladmin ping failed" "$MA_LOG"
  say "MariaDB answers after $((waited / 5))s (pid $pid)"
}

# --- facts ----------------------------------------------------------------------------------

write_facts() {
  local pg_version ma_version tmp
  pg_version="$(pg_sql 'SHOW server_version')"
  ma_version="$(ma_sql 'SELECT VERSION()')"
  tmp="$FACTS.tmp"
  cat >"$tmp" <<EOF
# Written by scripts/lab/db.sh up; read by tests/lab/db.py. No secrets: passwords are in the
# *_PASSWORD_FILE files (mode 0600). Values are single-quoted: the file can be sourced.
DATA_ROOT='$DATA_ROOT'
PG_HOST='$LAB_HOST'
PG_PORT='$PG_PORT'
PG_USER='$LAB_USER'
PG_PASSWORD_FILE='$PG_PWFILE'
PG_DATABASE='postgres'
PG_BIN='$PG_BIN'
PG_DATA='$PG_DATA'
PG_VERSION='$pg_version'
MARIADB_HOST='$LAB_HOST'
MARIADB_PORT='$MA_PORT'
MARIADB_USER='$LAB_USER'
MARIADB_PASSWORD_FILE='$MA_PWFILE'
MARIADB_DATABASE='mysql'
MARIADB_DATA='$MA_DATA'
MARIADB_VERSION='$ma_version'
EOF
  mv "$tmp" "$FACTS"
  say "PostgreSQL $pg_version: $LAB_USER@$LAB_HOST:$PG_PORT/postgres, password in $PG_PWFILE"
  say "MariaDB $ma_version: $LAB_USER@$LAB_HOST:$MA_PORT/mysql, password in $MA_PWFILE"
}

client_versions() {
  local v
  for v in "pg_dump --version" "pg_restore --version" "pgbench --version" \
    "mysqldump --version" "mariadb --version"; do
    say "client: $($v 2>&1 | head -n 1)"
  done
}

# --- stop -----------------------------------------------------------------------------------

# stop PIDFILE NAME SIGNAL SECONDS: send SIGNAL, wait, SIGKILL after SECONDS.
stop() {
  local pidfile="$1" name="$2" signal="$3" limit="$4" pid ticks=0
  if ! alive "$pidfile" "$name"; then
    rm -f "$pidfile"
    return
  fi
  pid="$(head -n 1 "$pidfile")"
  say "stopping $name (pid $pid, SIG$signal)"
  kill -"$signal" "$pid" 2>/dev/null || true
  while running "$pid"; do
    if [ "$ticks" -ge $((limit * 5)) ]; then
      say "$name (pid $pid) still runs after ${limit}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.2
    ticks=$((ticks + 1))
  done
  rm -f "$pidfile"
}

# --- commands -------------------------------------------------------------------------------

cmd_up() {
  lock
  install_apt
  check_tools
  choose_data_root
  set_paths
  start_postgres
  start_mariadb
  write_facts
  client_versions
  say "up in $((SECONDS - START_SECONDS))s"
}

cmd_down() {
  lock
  if [ -s "$DATA_ROOT_FILE" ]; then
    DATA_ROOT="$(cat "$DATA_ROOT_FILE")"
    set_paths
    pg_adopt
    ma_adopt
  fi
  # SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave).
  stop "$PG_PIDFILE" postgres INT 30
  stop "$MA_PIDFILE" mariadbd TERM 60
  say "down"
}

cmd_status() {
  local rc=0
  if [ ! -s "$DATA_ROOT_FILE" ]; then
    say "never set up in this checkout (bash scripts/lab/db.sh up)"
    return 1
  fi
  DATA_ROOT="$(cat "$DATA_ROOT_FILE")"
  set_paths
  PG_PORT="$(cat "$PG_PORTFILE" 2>/dev/null || true)"
  MA_PORT="$(cat "$MA_PORTFILE" 2>/dev/null || true)"
  if alive "$PG_PIDFILE" postgres || alive "$PG_DATA/postmaster.pid" postgres; then
    say "PostgreSQL: running, pid $(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || echo '?')"
  else
    say "PostgreSQL: not running"
    rc=1
  fi
  if [ -s "$PG_PWFILE" ] && pg_answers; then
    say "PostgreSQL: $(pg_sql 'SHOW server_version') answers on $LAB_HOST:$PG_PORT as $LAB_USER"
  else
    say "PostgreSQL: does not answer on $LAB_HOST:${PG_PORT:-?}"
    rc=1
  fi
  if alive "$MA_PIDFILE" mariadbd || alive "$MA_OWN_PIDFILE" mariadbd; then
    say "MariaDB: running, pid $(head -n 1 "$MA_OWN_PIDFILE" 2>/dev/null || echo '?')"
  else
    say "MariaDB: not running"
    rc=1
  fi
  if [ -s "$MA_PWFILE" ] && ma_answers; then
    say "MariaDB: $(ma_sql 'SELECT VERSION()') answers on $LAB_HOST:$MA_PORT as $LAB_USER"
  else
    say "MariaDB: does not answer on $LAB_HOST:${MA_PORT:-?}"
    rc=1
  fi
  return "$rc"
}

lab_main "$@"
