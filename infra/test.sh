#!/usr/bin/env bash
# The whole test suite against the real local services (started and stopped by the suite).
# Extra arguments go to pytest, e.g. `bash infra/test.sh -m "not ui"`.
#
# Without arguments it runs two sessions: everything but the fault tests, then the fault tests
# (`-m faults`, each on a private stack of its own). In one clean-clone run the shared services
# were found stopped right after the daemon-kill test, which broke every later test; the cause
# is not found yet, so the fault tests run last, in a session of their own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash infra/python-env.sh
mkdir -p test-artifacts
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
status=0
.venv/bin/python -m pytest -m "not faults" || status=$?
.venv/bin/python -m pytest -m faults || status=$((status == 0 ? $? : status))
exit "$status"
