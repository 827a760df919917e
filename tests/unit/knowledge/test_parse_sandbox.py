"""Documents parsed in a child process: the same result as in-process, and a document over the
time or memory limit rejected with that reason while the next one parses."""

import pytest

from rag_assets.knowledge.parse_sandbox import ParseLimits, SandboxedParser
from rag_assets.knowledge.parsing import UnusableDocument, parse_document

GUIDE = b"# Baggage\n\nOne **cabin** bag of up to 8 kg.\n\n## Sports equipment\n\nSkis fly free.\n"


@pytest.fixture
def parser():
    sandboxed = SandboxedParser(ParseLimits(seconds=30, memory_mb=512))
    yield sandboxed
    sandboxed.close()


def test_a_document_parses_as_it_does_in_process(parser):
    assert parser.parse("kb/guide.md", GUIDE, 1 << 20) == parse_document("kb/guide.md", GUIDE, 1 << 20)


def test_a_rejection_carries_the_parsers_reason(parser):
    with pytest.raises(UnusableDocument, match="^document is empty$"):
        parser.parse("kb/empty.md", b"  \n", 1 << 20)


@pytest.mark.parametrize("line", [b"*a " * 330_000, b"[a](" * 250_000, b"# x" + b" #" * 500_000 + b"y\n\ntext",
                                  b"__a " * 250_000, b"`a " * 330_000])
def test_a_one_megabyte_hostile_line_parses_within_the_limit(parser, line):
    # Each of these took quadratic time before the patterns were bounded (about an hour).
    parsed = parser.parse("kb/hostile.md", line, 10 << 20)
    assert parsed.sections


def test_a_document_over_the_time_limit_is_rejected_and_the_next_one_parses():
    parser = SandboxedParser(ParseLimits(seconds=0.05, memory_mb=512))
    try:
        parser.parse("kb/warm-up.md", GUIDE, 1 << 20)  # the child is started and ready
        with pytest.raises(UnusableDocument, match=r"^parsing took longer than 0.05 s \(the limit\)$"):
            parser.parse("kb/long.md", b"line of text\n" * 800_000, 20 << 20)
        assert parser.parse("kb/guide.md", GUIDE, 1 << 20).title == "Baggage"
    finally:
        parser.close()


def test_a_document_over_the_memory_limit_is_rejected_and_the_next_one_parses():
    parser = SandboxedParser(ParseLimits(seconds=60, memory_mb=24))
    try:
        with pytest.raises(UnusableDocument, match=r"^parsing needs more than 24 MB \(the limit\)$"):
            parser.parse("kb/big.md", b"a\n" * 4_000_000, 20 << 20)
        assert parser.parse("kb/guide.md", GUIDE, 1 << 20).title == "Baggage"
    finally:
        parser.close()


def test_a_pdf_over_the_page_limit_is_rejected_before_its_pages_are_read():
    import io

    from pypdf import PdfWriter

    from rag_assets.knowledge.parsing import MAX_PDF_PAGES

    writer = PdfWriter()
    for _ in range(MAX_PDF_PAGES + 1):
        writer.add_blank_page(width=72, height=72)
    body = io.BytesIO()
    writer.write(body)
    with pytest.raises(UnusableDocument, match=f"^PDF has {MAX_PDF_PAGES + 1} pages, over the "
                                               f"{MAX_PDF_PAGES}-page limit$"):
        parse_document("kb/huge.pdf", body.getvalue(), 50 << 20)
