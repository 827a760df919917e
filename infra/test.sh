#!/usr/bin/env bash
# The whole test suite against the real local services (started and stopped by the suite).
# Extra arguments go to pytest, e.g. `bash infra/test.sh -m "not ui"`.
#
# Without arguments it runs four sessions: the integration and unit tests, the knowledge tests
# with LanceDB on S3, then the end-to-end deployment tests (`-m e2e`), then the fault tests
# (`-m faults`, each on a private stack of its own). In two clean-clone runs the shared services
# were stopped 25-45 s after the end-to-end module's deployment was shut down, and every test
# after that failed; the cause is not found yet (docs/reliability.md), so the tests that need the
# shared services run first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash infra/python-env.sh
mkdir -p test-artifacts
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
status=0
session() {
  "$@" || status=$((status == 0 ? $? : status))
}
session .venv/bin/python -m pytest -m "not e2e and not faults"
# The knowledge tests again with LanceDB on a prefix of each test's S3 bucket, as a deployment
# beyond one machine stores it (the `lancedb` fixture in tests/conftest.py); 2-3 minutes. Left
# out: the 1,000-object backfill (30 s), whose subject is the paging of the S3 listing.
session env RAG_TEST_LANCEDB_ON_S3=1 .venv/bin/python -m pytest -m "not e2e and not faults" \
  -k "not more_than_1000_objects" tests/integration/knowledge
for selection in "e2e" "faults"; do
  session .venv/bin/python -m pytest -m "$selection"
done
exit "$status"
