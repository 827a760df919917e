#!/usr/bin/env bash
# The main job: installs what is missing, starts Kafka, S3 and PostgreSQL, writes demo data,
# and runs the Dagster UI with its sensors on. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash infra/python-env.sh
exec .venv/bin/rag-assets demo "$@"
