#!/usr/bin/env bash
# Start Pedigree on the embedded defaults: SQLite, a file-system Celery broker,
# artifacts in var/. DEBUG is off (as in production): error pages show no source
# or settings, and WhiteNoise serves the static files. Ctrl-C stops the web
# server, the worker and beat together, within seconds. (Started in the
# background, e.g. `nohup scripts/run.sh &`, bash ignores SIGINT: stop it with
# `kill -TERM PID`, which does the same.)
#
# Environment: PORT (8000), PEDIGREE_VAR (var/), VENV (.venv), DEBUG (0),
# STOP_GRACE_SECONDS (8: how long running tasks may finish before the worker is
# stopped cold; a scan cut short is resumed by another worker later).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBUG="${DEBUG:-0}"
export PORT="${PORT:-8000}"
export ALLOWED_HOSTS="${ALLOWED_HOSTS:-127.0.0.1,localhost,[::1]}"
VENV="${VENV:-.venv}"
VAR="${PEDIGREE_VAR:-var}"
GRACE="${STOP_GRACE_SECONDS:-8}"
export PEDIGREE_VAR="$VAR"

# Private: the database, the secret key, tokens and artifacts live here.
mkdir -p "$VAR"
chmod 700 "$VAR"
for file in "$VAR"/pedigree.sqlite3 "$VAR"/pedigree.sqlite3-wal "$VAR"/pedigree.sqlite3-shm; do
  if [ -e "$file" ]; then chmod 600 "$file"; fi
done

if [ -z "${SECRET_KEY:-}" ]; then
  # manage.py reads the same file when SECRET_KEY is unset, so README commands
  # work in a fresh shell.
  if [ ! -s "$VAR/secret_key" ]; then
    (umask 077; "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(50))' > "$VAR/secret_key")
  fi
  SECRET_KEY="$(cat "$VAR/secret_key")"
  export SECRET_KEY
fi

"$VENV/bin/python" manage.py migrate --no-input -v0
"$VENV/bin/python" manage.py seed_demo
"$VENV/bin/python" manage.py collectstatic --no-input -v0

# Each child runs in its own session: a Ctrl-C reaches only this script, which
# then stops them in order. (Sent to all at once, gunicorn's quick stop and the
# TERM that followed it raced into a 30 s graceful wait and a SIGKILLed worker.)
web="" worker="" beat=""
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
stop() {
  trap '' INT TERM
  trap - EXIT
  echo; echo "Stopping Pedigree..."
  # Web and beat stop at once; the worker warm-stops (running tasks may finish).
  for pid in "$web" "$beat" "$worker"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + GRACE))
  while { alive "$web" || alive "$beat" || alive "$worker"; } && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  # Past the grace period: a cold stop. Tasks are acknowledged late, and a scan's
  # heartbeat goes stale, so unfinished work is picked up again, never half-written.
  if alive "$worker"; then echo "Worker still busy after ${GRACE}s: stopping it cold."; kill -QUIT "$worker" 2>/dev/null || true; fi
  deadline=$((SECONDS + 5))
  while { alive "$web" || alive "$beat" || alive "$worker"; } && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  for pid in "$web" "$beat" "$worker"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "Stopped."
  exit 0
}
trap stop INT TERM EXIT

setsid "$VENV/bin/celery" -A pedigree worker --loglevel INFO --concurrency 2 -Q default,scans,training \
  --logfile "$VAR/worker.log" &
worker=$!
setsid "$VENV/bin/celery" -A pedigree beat --loglevel INFO --schedule "$VAR/celerybeat-schedule" \
  --logfile "$VAR/beat.log" &
beat=$!
# gthread workers close idle keep-alive connections within 2 s and stop within 5 s.
setsid "$VENV/bin/gunicorn" pedigree.wsgi --bind "127.0.0.1:${PORT}" --workers 2 --threads 4 \
  --timeout 600 --graceful-timeout 5 --keep-alive 2 --access-logfile - &
web=$!

sleep 2
cat <<MSG

  Pedigree is running.
    Admin console:  http://127.0.0.1:${PORT}/admin/   (credentials in ${VAR}/admin-password.txt)
    API docs:       http://127.0.0.1:${PORT}/api/docs/
    API root:       http://127.0.0.1:${PORT}/api/v1/  (demo API tokens in ${VAR}/demo-tokens.txt)
    Health:         http://127.0.0.1:${PORT}/readyz
  Worker log: ${VAR}/worker.log.  Press Ctrl-C to stop.

MSG
# Wait until one of them exits (or a signal arrives; the trap stops the rest).
wait -n "$web" "$worker" "$beat" || true
echo "A Pedigree process exited on its own; stopping the others."
stop
