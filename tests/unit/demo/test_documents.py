from __future__ import annotations

import random
import re
from datetime import date
from html.parser import HTMLParser

from rag_assets.demo.documents import Document, generate_documents, modify_document, new_advisory


def test_a_few_dozen_documents_in_three_formats(documents):
    assert 30 <= len(documents) <= 60
    assert len({d.key for d in documents}) == len(documents)
    assert {d.fmt for d in documents} == {"md", "txt", "html"}
    topics = " ".join(d.key for d in documents)
    for topic in ("baggage", "refunds", "check-in", "pets", "special-assistance", "tier-",
                  "delays", "visas/"):
        assert topic in topics


def test_deterministic(documents):
    assert generate_documents(seed=7, today=date(2025, 1, 15)) == documents
    other = generate_documents(seed=8, today=date(2025, 1, 15))
    assert [d.body() for d in other] != [d.body() for d in documents]


class _Headings(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def test_documents_have_headings_and_several_paragraphs(documents):
    for d in documents:
        text = d.render()
        assert len(text) > 250
        assert len(d.sections) >= 2
        assert sum(len(paragraphs) for _, paragraphs in d.sections) >= 3
        if d.fmt == "md":
            assert text.startswith(f"# {d.title}\n")
            assert len(re.findall(r"^## ", text, re.M)) == len(d.sections)
        elif d.fmt == "txt":
            assert text.splitlines()[1] == "=" * len(d.title)
        else:
            parser = _Headings()
            parser.feed(text)
            assert parser.tags.count("h1") == 1 and parser.tags.count("h2") == len(d.sections)
            assert parser.tags.count("p") >= 3
        assert d.body().decode("utf-8") == text
        assert "COVID" not in text


def test_modification_changes_one_paragraph_and_bumps_the_revision(documents):
    rng = random.Random(3)
    today = date(2025, 2, 1)
    quantity_edits = 0
    for _ in range(100):
        document = rng.choice(documents)
        changed, what = modify_document(document, rng, today)
        assert changed.key == document.key and changed.title == document.title
        assert changed.revision == document.revision + 1 and changed.updated == today
        before = [p for _, ps in document.sections for p in ps]
        after = [p for _, ps in changed.sections for p in ps]
        assert len(before) == len(after)
        assert sum(a != b for a, b in zip(before, after)) == 1
        assert changed.body() != document.body()
        quantity_edits += "->" in what
    assert quantity_edits > 50


def test_baggage_weight_can_change(documents):
    checked = next(d for d in documents if "checked-baggage" in d.key)
    rng = random.Random(0)
    weights = set()
    for _ in range(60):
        changed, _ = modify_document(checked, rng, date(2025, 2, 1))
        weights.update(re.findall(r"(\d+) kg", changed.render()))
    assert len(weights) > 3


def test_advisories():
    rng = random.Random(1)
    docs = [new_advisory(rng, date(2025, 2, 1), i) for i in range(10)]
    assert len({d.key for d in docs}) == 10
    assert all(d.key.startswith("advisories/") and isinstance(d, Document) for d in docs)
    assert all(len(d.sections) >= 2 for d in docs)
