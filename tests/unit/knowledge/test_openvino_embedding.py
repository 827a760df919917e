"""The OpenVINO MiniLM embedder (bfloat16 on AMX, or float32) against the numpy reference."""

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("openvino")

from rag_assets.knowledge.embedding import (  # noqa: E402
    MINILM_MODEL_ID,
    QUICKSTART_SENTENCES,
    QUICKSTART_SIMILARITIES,
    Embedder,
    quickstart_pairs,
)
from rag_assets.knowledge.onnx_embedding import (  # noqa: E402
    MINILM_BF16_MODEL_ID,
    OpenVinoMiniLMEmbedder,
    cpu_has_amx_bf16,
)
from resources import embedder as embedder_module  # noqa: E402
from resources.embedder import EmbedderResource, default_backend  # noqa: E402
from tests.unit.knowledge.quickstart import TEXTS  # noqa: E402


@pytest.fixture(scope="module")
def openvino_bf16(model_cache):
    return OpenVinoMiniLMEmbedder("bf16", cache_dir=model_cache)


def test_f32_matches_the_numpy_reference(model_cache, minilm):
    f32 = OpenVinoMiniLMEmbedder("f32", cache_dir=model_cache)
    assert f32.precision == "f32" and f32.model_id == MINILM_MODEL_ID
    texts = QUICKSTART_SENTENCES + TEXTS  # mixed lengths: padding is masked
    np.testing.assert_allclose(f32.embed(texts), minilm.embed(texts), atol=1e-5)


def test_bf16_stays_within_bf16_rounding_of_the_reference(openvino_bf16, minilm):
    assert isinstance(openvino_bf16, Embedder) and openvino_bf16.dimension == 384
    if openvino_bf16.precision != "bf16":
        # No bfloat16 on this CPU: the plugin ran float32 and the model_id says so.
        assert openvino_bf16.model_id == MINILM_MODEL_ID
        return
    assert openvino_bf16.model_id == MINILM_BF16_MODEL_ID != MINILM_MODEL_ID
    vectors = openvino_bf16.embed(QUICKSTART_SENTENCES)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Measured 0.6661, 0.1046, 0.1416 against the published 0.6660, 0.1046, 0.1411 (at most
    # 5e-4 away, and the vectors do not depend on the batch). 2e-3 is about one bfloat16
    # rounding step (2^-9) and 4x the measured gap; the int8 variant misses by 0.004-0.026.
    np.testing.assert_allclose(quickstart_pairs(vectors), QUICKSTART_SIMILARITIES, atol=2e-3)
    cosines = (openvino_bf16.embed(TEXTS) * minilm.embed(TEXTS)).sum(axis=1)
    assert cosines.min() > 0.999


def test_bf16_runs_as_f32_on_a_cpu_without_amx(openvino_bf16):
    """Where the plugin would only emulate bfloat16, vectors depended on the batch."""
    expected = "bf16" if cpu_has_amx_bf16() else "f32"
    assert openvino_bf16.precision == expected
    assert openvino_bf16.model_id == (MINILM_BF16_MODEL_ID if expected == "bf16" else MINILM_MODEL_ID)


def test_bf16_vectors_do_not_depend_on_the_batch(model_cache, openvino_bf16):
    batched = OpenVinoMiniLMEmbedder("bf16", batch_size=8, cache_dir=model_cache)
    together = batched.embed(TEXTS)
    alone = np.vstack([openvino_bf16.embed([text]) for text in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert batched.embed([]).shape == (0, 384)


def test_an_unknown_precision_is_refused(model_cache):
    with pytest.raises(ValueError, match="unknown OpenVINO precision 'int4'"):
        OpenVinoMiniLMEmbedder("int4", cache_dir=model_cache)


def test_the_resource_builds_the_openvino_backend(model_cache, monkeypatch):
    monkeypatch.setenv("RAG_MODEL_CACHE", str(model_cache))
    chosen = EmbedderResource(backend="local-minilm-openvino").get_embedder()
    assert isinstance(chosen, OpenVinoMiniLMEmbedder)
    expected = MINILM_BF16_MODEL_ID if chosen.precision == "bf16" else MINILM_MODEL_ID
    assert chosen.model_id == expected


def test_default_backend_prefers_openvino_only_on_amx(monkeypatch):
    assert default_backend() == (
        "local-minilm-openvino" if cpu_has_amx_bf16() else "local-minilm-onnx"
    )
    for openvino, amx, onnxruntime, expected in [
        (True, True, True, "local-minilm-openvino"),
        (True, False, True, "local-minilm-onnx"),
        (False, True, True, "local-minilm-onnx"),
        (False, False, False, "local-minilm"),
    ]:
        monkeypatch.setattr(embedder_module, "openvino_available", lambda v=openvino: v)
        monkeypatch.setattr(embedder_module, "cpu_has_amx_bf16", lambda v=amx: v)
        monkeypatch.setattr(embedder_module, "onnxruntime_available", lambda v=onnxruntime: v)
        assert default_backend() == expected
