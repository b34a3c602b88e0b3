#!/usr/bin/env bash
# Start Pedigree on the embedded defaults: SQLite, a file-system Celery broker,
# artifacts in var/. Ctrl-C stops the web server and the worker together.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBUG="${DEBUG:-1}"
export PORT="${PORT:-8000}"
VENV=.venv
mkdir -p var

if [ -z "${SECRET_KEY:-}" ]; then
  [ -f var/secret_key ] || { $VENV/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))' > var/secret_key; chmod 600 var/secret_key; }
  SECRET_KEY="$(cat var/secret_key)"
  export SECRET_KEY
fi

$VENV/bin/python manage.py migrate --no-input -v0
$VENV/bin/python manage.py seed_demo
$VENV/bin/python manage.py collectstatic --no-input -v0

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "Stopping Pedigree..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "Stopped."
  exit 0
}
trap stop INT TERM EXIT

$VENV/bin/celery -A pedigree worker --loglevel INFO --concurrency 2 -Q default,scans,training \
  --logfile var/worker.log &
pids+=($!)
$VENV/bin/celery -A pedigree beat --loglevel INFO --schedule var/celerybeat-schedule \
  --logfile var/beat.log &
pids+=($!)
$VENV/bin/gunicorn pedigree.wsgi --bind "127.0.0.1:${PORT}" --workers 2 --threads 4 \
  --timeout 600 --access-logfile - &
pids+=($!)

sleep 2
cat <<MSG

  Pedigree is running.
    Admin console:  http://127.0.0.1:${PORT}/admin/   (credentials in var/admin-password.txt)
    API docs:       http://127.0.0.1:${PORT}/api/docs/
    API root:       http://127.0.0.1:${PORT}/api/v1/  (demo API tokens in var/demo-tokens.txt)
    Health:         http://127.0.0.1:${PORT}/readyz
  Worker log: var/worker.log.  Press Ctrl-C to stop.

MSG
wait -n "${pids[@]}"
