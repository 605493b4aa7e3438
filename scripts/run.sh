#!/usr/bin/env bash
# `make run`: the embedded default. SQLite and a file-based Celery broker under var/, secrets
# generated once into var/dev.env, the demo tenant, then every process under one supervisor
# (scripts/supervise.py: a process that dies is restarted, the others keep running).
set -euo pipefail
cd "$(dirname "$0")/.."

export GANTRY_DATA_DIR="${GANTRY_DATA_DIR:-$PWD/var}"
export GANTRY_PORT="${GANTRY_PORT:-8000}"
export GANTRY_XDS_PORT="${GANTRY_XDS_PORT:-18000}"
export GANTRY_RATELIMIT_PORT="${GANTRY_RATELIMIT_PORT:-18081}"
mkdir -p "$GANTRY_DATA_DIR/broker/queue" "$GANTRY_DATA_DIR/broker/control" \
  "$GANTRY_DATA_DIR/broker/claims" "$GANTRY_DATA_DIR/static"

env_file="$GANTRY_DATA_DIR/dev.env"
if [ ! -f "$env_file" ]; then
  umask 077
  .venv/bin/python - >"$env_file" <<'PY'
import secrets
from cryptography.fernet import Fernet
print(f"GANTRY_SECRET_KEY={secrets.token_urlsafe(50)}")
print(f"GANTRY_ENCRYPTION_KEYS={Fernet.generate_key().decode()}")
PY
  echo "generated secrets in $env_file"
fi
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a

.venv/bin/python manage.py migrate --noinput -v 0
.venv/bin/python manage.py bootstrap_demo
echo
echo "  Gantry console and API: http://127.0.0.1:$GANTRY_PORT/  (API docs: /api/v1/docs/)"
echo "  Gateways listen on 127.0.0.1, ports ${GANTRY_LOCAL_PORT_RANGE:-20000-29999}; xDS on :$GANTRY_XDS_PORT"
echo "  A process that exits is restarted; Ctrl-C stops everything."
echo
exec .venv/bin/python scripts/supervise.py -f Procfile.dev --grace "${GANTRY_STOP_GRACE_SECONDS:-10}"
