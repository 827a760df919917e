"""Shared, session-scoped demo data for the demo generator's unit tests."""

from __future__ import annotations

from datetime import date

import pytest

from rag_assets.demo.documents import generate_documents
from rag_assets.demo.people import generate_people
from rag_assets.demo.source_systems import build_source_systems

TODAY = date(2025, 1, 15)


@pytest.fixture(scope="session")
def people():
    return generate_people(300, seed=7, today=TODAY)


@pytest.fixture(scope="session")
def sources(people):
    # tests must not mutate this one; build a fresh snapshot for change-generator tests
    return build_source_systems(people, seed=7, today=TODAY)


@pytest.fixture(scope="session")
def documents():
    return generate_documents(seed=7, today=TODAY)
