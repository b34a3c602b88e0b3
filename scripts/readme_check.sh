#!/usr/bin/env bash
# Run every shell block of README.md as written against a running `make run`
# (in another terminal), and report each command's outcome; exits 1 if any
# command failed. PORT: the server's port (8000). See scripts/readme_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${VENV:-.venv}/bin/python" scripts/readme_check.py "$@"
