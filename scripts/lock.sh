#!/usr/bin/env bash
# Re-pin requirements.txt and requirements-dev.txt from the *.in files, in scratch venvs.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/runtime"
"$scratch/runtime/bin/pip" install --quiet -r requirements.in
python3 -m venv "$scratch/dev"
"$scratch/dev/bin/pip" install --quiet -r requirements.in -r requirements-dev.in
{
  echo "# Runtime dependencies, pinned (direct and transitive). Why each direct one is here: docs/dependencies.md"
  echo "# Regenerate: make lock (installs requirements.in into a scratch venv and freezes it)."
  "$scratch/runtime/bin/pip" freeze
} >requirements.txt
{
  echo "# Test and lint tools, pinned. Regenerate with: make lock"
  echo "-r requirements.txt"
  "$scratch/dev/bin/pip" freeze | grep -v -x -F -f <("$scratch/runtime/bin/pip" freeze)
} >requirements-dev.txt
echo "pinned: requirements.txt requirements-dev.txt"
