"""The ONNX Runtime MiniLM embedder against the numpy reference and the published scores."""

import os

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rag_assets.knowledge.embedding import MINILM_MODEL_ID, Embedder  # noqa: E402
from rag_assets.knowledge.onnx_embedding import (  # noqa: E402
    MINILM_INT8_MODEL_ID,
    OnnxMiniLMEmbedder,
    ensure_onnx_model,
)
from resources.embedder import EmbedderResource  # noqa: E402

REFERENCE_SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
]
# sentence-transformers' quickstart for all-MiniLM-L6-v2 (rounded to 4 places).
PUBLISHED = np.array([0.6660, 0.1046, 0.1411])
TEXTS = [
    "Short.",
    "A much longer sentence about checked baggage fees on long-haul flights to Asia.",
    "Each passenger may bring one cabin bag weighing up to 8 kg.",
    "Refunds are paid to the original card within seven days. " * 40,  # truncated at 256
]


def _pairwise(vectors: np.ndarray) -> np.ndarray:
    sims = vectors @ vectors.T
    return np.array([sims[0, 1], sims[0, 2], sims[1, 2]])


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def onnx_fp32(model_cache):
    return OnnxMiniLMEmbedder("fp32", cache_dir=model_cache)


@pytest.fixture(scope="module")
def onnx_int8(model_cache):
    return OnnxMiniLMEmbedder("int8", cache_dir=model_cache)


def test_fp32_matches_the_numpy_reference(onnx_fp32, minilm):
    expected = minilm.embed(REFERENCE_SENTENCES + TEXTS)
    got = onnx_fp32.embed(REFERENCE_SENTENCES + TEXTS)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(_pairwise(got[:3]), PUBLISHED, atol=1e-4)


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
    vectors = onnx_int8.embed(REFERENCE_SENTENCES)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Measured deviation 0.004-0.026 depending on which texts share a batch; this is the
    # default batch of 4 holding exactly these three sentences (0.011 when measured).
    np.testing.assert_allclose(_pairwise(vectors), PUBLISHED, atol=0.02)
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
    sims = _pairwise(onnx_int8.embed(REFERENCE_SENTENCES))
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
    assert EmbedderResource().backend == "local-minilm-onnx"  # onnxruntime is installed here
    fp32 = EmbedderResource(backend="local-minilm-onnx").get_embedder()
    int8 = EmbedderResource(backend="local-minilm-int8").get_embedder()
    assert isinstance(fp32, OnnxMiniLMEmbedder) and fp32.model_id == MINILM_MODEL_ID
    assert isinstance(int8, OnnxMiniLMEmbedder) and int8.model_id == MINILM_INT8_MODEL_ID
