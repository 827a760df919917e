import numpy as np
import pytest

from rag_assets.knowledge.embedding import (
    MINILM_MODEL_ID,
    QUICKSTART_SENTENCES,
    QUICKSTART_SIMILARITIES,
    Embedder,
    locate_minilm_model_dir,
    quickstart_pairs,
)


def test_model_files_come_from_the_installed_package():
    model_dir = locate_minilm_model_dir()
    assert (model_dir / "model.safetensors").is_file()
    assert (model_dir / "tokenizer.json").is_file()


def test_minilm_reproduces_the_published_similarity_scores(minilm):
    vectors = minilm.embed(QUICKSTART_SENTENCES)
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        quickstart_pairs(vectors), QUICKSTART_SIMILARITIES, atol=1e-4
    )  # the published values are rounded to 4 places


def test_batching_and_padding_do_not_change_vectors(minilm):
    texts = [
        "Short.",
        "A much longer sentence about checked baggage fees on long-haul flights to Asia.",
        "Mid length text here.",
    ]
    together = minilm.embed(texts)
    alone = np.vstack([minilm.embed([text]) for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_a_question_finds_its_answer(minilm):
    passages = [
        "Each passenger may bring one cabin bag weighing up to 8 kg.",
        "Refunds are paid to the original card within seven days.",
        "Lounge access is included for gold members on long-haul flights.",
    ]
    question, *_ = minilm.embed(["How heavy can my hand luggage be?"])
    scores = minilm.embed(passages) @ question
    assert int(np.argmax(scores)) == 0


def test_long_text_is_truncated_not_refused(minilm):
    long_text = "baggage " * 2000
    assert minilm.count_tokens(long_text) == 2000
    assert minilm.embed([long_text]).shape == (1, 384)


def test_empty_input_gives_an_empty_matrix(minilm):
    assert minilm.embed([]).shape == (0, 384)


def test_minilm_satisfies_the_embedder_protocol(minilm):
    assert isinstance(minilm, Embedder)
    assert minilm.model_id == MINILM_MODEL_ID
    assert minilm.dimension == 384


def test_a_missing_model_directory_is_reported(tmp_path):
    from rag_assets.knowledge.embedding import MiniLMEmbedder

    with pytest.raises(FileNotFoundError):
        MiniLMEmbedder(model_dir=tmp_path)
