"""The ONNX Runtime MiniLM embedder against the numpy reference and the published scores."""

import os

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rag_assets.knowledge.embedding import (  # noqa: E402
    MINILM_MODEL_ID,
    QUICKSTART_SENTENCES,
    QUICKSTART_SIMILARITIES,
    Embedder,
    quickstart_pairs,
)
from rag_assets.knowledge.onnx_embedding import (  # noqa: E402
    MINILM_INT8_MODEL_ID,
    OnnxMiniLMEmbedder,
    ensure_onnx_model,
)
from resources.embedder import EmbedderResource, default_backend  # noqa: E402
from tests.unit.knowledge.quickstart import TEXTS  # noqa: E402


@pytest.fixture(scope="module")
def onnx_fp32(model_cache):
    return OnnxMiniLMEmbedder("fp32", cache_dir=model_cache)


@pytest.fixture(scope="module")
def onnx_int8(model_cache):
    return OnnxMiniLMEmbedder("int8", cache_dir=model_cache)


def test_fp32_matches_the_numpy_reference(onnx_fp32, minilm):
    expected = minilm.embed(QUICKSTART_SENTENCES + TEXTS)
    got = onnx_fp32.embed(QUICKSTART_SENTENCES + TEXTS)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(quickstart_pairs(got[:3]), QUICKSTART_SIMILARITIES, atol=1e-4)


def test_fp32_shares_the_numpy_model_id_and_protocol(onnx_fp32, minilm):
    assert isinstance(onnx_fp32, Embedder)
    assert onnx_fp32.model_id == minilm.model_id == MINILM_MODEL_ID
    assert onnx_fp32.dimension == 384
    assert onnx_fp32.count_tokens("baggage " * 300) == minilm.count_tokens("baggage " * 300)
    assert onnx_fp32.embed([]).shape == (0, 384)


def test_fp32_batching_and_padding_do_not_change_vectors(model_cache):
    batched = OnnxMiniLMEmbedder("fp32", batch_size=8, cache_dir=model_cache)
    together = batched.embed(TEXTS)
    alone = np.vstack([batched.embed([text]) for text in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_int8_stays_close_to_the_published_scores(onnx_int8, minilm):
    assert onnx_int8.model_id == MINILM_INT8_MODEL_ID != MINILM_MODEL_ID
    vectors = onnx_int8.embed(QUICKSTART_SENTENCES)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Measured deviation 0.004-0.026 depending on which texts share a batch; this is the
    # default batch of 4 holding exactly these three sentences (0.011 when measured).
    np.testing.assert_allclose(quickstart_pairs(vectors), QUICKSTART_SIMILARITIES, atol=0.02)
    cosines = (onnx_int8.embed(TEXTS) * minilm.embed(TEXTS)).sum(axis=1)
    assert cosines.min() > 0.98


def test_int8_ranks_like_the_reference(onnx_int8):
    passages = [
        "Each passenger may bring one cabin bag weighing up to 8 kg.",
        "Refunds are paid to the original card within seven days.",
        "Lounge access is included for gold members on long-haul flights.",
    ]
    questions = {
        "How heavy can my hand luggage be?": 0,
        "When will I get my money back?": 1,
        "Can I use the lounge?": 2,
    }
    passage_vectors = onnx_int8.embed(passages)
    for question, answer in questions.items():
        scores = passage_vectors @ onnx_int8.embed([question])[0]
        assert int(np.argmax(scores)) == answer, question
    sims = quickstart_pairs(onnx_int8.embed(QUICKSTART_SENTENCES))
    assert sims[0] > sims[2] > sims[1]  # same order as the published scores


def test_the_onnx_file_is_built_once_into_the_cache(model_cache, onnx_fp32, monkeypatch):
    path = onnx_fp32.onnx_path
    assert path.parent == model_cache and path.suffix == ".onnx"
    built_at = os.stat(path).st_mtime_ns
    assert ensure_onnx_model(onnx_fp32.model_dir, "fp32", model_cache) == path
    assert os.stat(path).st_mtime_ns == built_at
    assert not [p for p in model_cache.iterdir() if p.name.endswith(".tmp")]
    # RAG_MODEL_CACHE is the default location.
    monkeypatch.setenv("RAG_MODEL_CACHE", str(model_cache))
    assert ensure_onnx_model(onnx_fp32.model_dir, "fp32") == path


def test_an_unknown_variant_is_refused(model_cache):
    with pytest.raises(ValueError, match="unknown ONNX variant 'fp16'"):
        OnnxMiniLMEmbedder("fp16", cache_dir=model_cache)


def test_resource_backends(model_cache, monkeypatch):
    monkeypatch.setenv("RAG_MODEL_CACHE", str(model_cache))
    assert EmbedderResource().backend == default_backend()
    fp32 = EmbedderResource(backend="local-minilm-onnx").get_embedder()
    int8 = EmbedderResource(backend="local-minilm-int8").get_embedder()
    assert isinstance(fp32, OnnxMiniLMEmbedder) and fp32.model_id == MINILM_MODEL_ID
    assert isinstance(int8, OnnxMiniLMEmbedder) and int8.model_id == MINILM_INT8_MODEL_ID
