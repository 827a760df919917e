"""Fixtures of the knowledge-base integration tests (helpers in `helpers.py`)."""

import pytest

from tests.integration.knowledge.helpers import (
    EMBEDDERS,
    FlakyEmbedder,
    KnowledgeBase,
    StandinEmbedderResource,
)


@pytest.fixture
def embedder(request):
    name = f"standin-{id(request)}"
    EMBEDDERS[name] = FlakyEmbedder()
    yield StandinEmbedderResource(standin=name)
    EMBEDDERS.pop(name, None)


@pytest.fixture
def kb(s3, postgres, lancedb, kafka, embedder):
    return KnowledgeBase(s3, postgres, lancedb, kafka, embedder)
