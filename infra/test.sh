#!/usr/bin/env bash
# The whole test suite against the real local services (started and stopped by the suite).
# Extra arguments go to pytest, e.g. `bash infra/test.sh -m "not ui"`.
#
# Without arguments it runs three sessions: the integration and unit tests, then the end-to-end
# deployment tests (`-m e2e`), then the fault tests (`-m faults`, each on a private stack of its
# own). In two clean-clone runs the shared services were stopped 25-45 s after the end-to-end
# module's deployment was shut down, and every test after that failed; the cause is not found
# yet (docs/reliability.md), so the tests that need the shared services run first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash infra/python-env.sh
mkdir -p test-artifacts
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
status=0
for selection in "not e2e and not faults" "e2e" "faults"; do
  .venv/bin/python -m pytest -m "$selection" || status=$((status == 0 ? $? : status))
done
exit "$status"
