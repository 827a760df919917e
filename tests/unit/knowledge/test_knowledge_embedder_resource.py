import numpy as np
import pytest
from dagster import asset, materialize

from rag_assets.knowledge.embedding import BedrockTitanEmbedder
from resources.embedder import EmbedderResource, default_backend, embedder_resource_from_env

ENV_VARS = [
    "EMBEDDER_BACKEND",
    "EMBEDDER_BATCH_SIZE",
    "BEDROCK_EMBEDDING_MODEL_ID",
    "BEDROCK_EMBEDDING_DIMENSIONS",
    "BEDROCK_ENDPOINT_URL",
    "EMBEDDER_MAX_ATTEMPTS",
]


@pytest.fixture
def clean_env(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# What the default backend builds: openvino and onnxruntime are dependencies; OpenVINO is chosen
# where the CPU has AMX for bfloat16 (its vectors have their own model_id), else ONNX Runtime fp32.
DEFAULT_EMBEDDERS = {
    "local-minilm-openvino": (
        "OpenVinoMiniLMEmbedder",
        "sentence-transformers/all-MiniLM-L6-v2+openvino-bf16",
    ),
    "local-minilm-onnx": ("OnnxMiniLMEmbedder", "sentence-transformers/all-MiniLM-L6-v2"),
}


def _embed_in_an_asset(resource, texts):
    @asset
    def embedded(embedder: EmbedderResource):
        chosen = embedder.get_embedder()
        return type(chosen).__name__, chosen.model_id, chosen.embed(texts)

    result = materialize([embedded], resources={"embedder": resource})
    assert result.success
    return result.output_for_node("embedded")


def test_defaults_to_the_offline_model(clean_env):
    resource = embedder_resource_from_env()
    kind, model_id, vectors = _embed_in_an_asset(resource, ["cabin bags"])
    assert (kind, model_id, vectors.shape) == (*DEFAULT_EMBEDDERS[default_backend()], (1, 384))


def test_bedrock_backend_is_configured_from_the_environment(clean_env, bedrock_standin):
    clean_env.setenv("EMBEDDER_BACKEND", "bedrock")
    clean_env.setenv("BEDROCK_ENDPOINT_URL", bedrock_standin.endpoint_url)
    clean_env.setenv("BEDROCK_EMBEDDING_DIMENSIONS", "512")
    clean_env.setenv("EMBEDDER_MAX_ATTEMPTS", "2")
    clean_env.setenv("AWS_REGION", "eu-west-1")
    kind, model_id, vectors = _embed_in_an_asset(
        embedder_resource_from_env(), ["lounge access"]
    )
    assert (kind, model_id, vectors.shape) == (
        "BedrockTitanEmbedder",
        "amazon.titan-embed-text-v2:0",
        (1, 512),
    )
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert bedrock_standin.state.requests[0]["body"]["dimensions"] == 512


def test_embedder_is_built_once_per_resource(clean_env):
    resource = EmbedderResource(
        backend="bedrock", bedrock_endpoint_url="http://127.0.0.1:1"
    )
    first = resource.get_embedder()
    assert isinstance(first, BedrockTitanEmbedder) and resource.get_embedder() is first
    assert (
        type(EmbedderResource().get_embedder()).__name__
        == DEFAULT_EMBEDDERS[default_backend()][0]
    )


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown embedder backend 'sagemaker'"):
        EmbedderResource(backend="sagemaker").get_embedder()
