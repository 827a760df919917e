#!/usr/bin/env bash
# The whole test suite against the real local services (started and stopped by the suite).
# Extra arguments go to pytest, e.g. `bash infra/test.sh -m "not ui"`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash infra/python-env.sh
mkdir -p test-artifacts
exec .venv/bin/python -m pytest "$@"
