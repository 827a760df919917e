import io

import pytest

from rag_assets.knowledge.parsing import UnusableDocument, decode_text, parse_document


def test_markdown_sections_carry_their_heading_path():
    body = b"""# Baggage policy

Intro with a [link](https://example.com) and **bold** text.

## Cabin bags
One bag of up to 8 kg.

```
# a comment in code, not a heading
```

Checked bags
------------

23 kg each.

### Sports equipment
Skis travel free.
"""
    document = parse_document("kb/baggage.md", body)
    assert document.title == "Baggage policy"
    assert [section.heading_path for section in document.sections] == [
        ("Baggage policy",),
        ("Baggage policy", "Cabin bags"),
        ("Baggage policy", "Checked bags"),
        ("Baggage policy", "Checked bags", "Sports equipment"),
    ]
    assert document.sections[0].text == "Intro with a link and bold text."
    assert "# a comment in code, not a heading" in document.sections[1].text
    assert document.sections[3].text == "Skis travel free."


def test_html_drops_scripts_styles_and_navigation_but_keeps_headings():
    body = b"""<html><head><title>Refunds | Example Air</title><style>p{color:red}</style></head>
    <body><nav><a href="/">Home</a> | <a href="/help">Help</a></nav>
    <h1>Refunds</h1><p>You can ask for a <b>refund</b> online.</p>
    <script>var secret = "tracking";</script>
    <h2>How long it takes</h2><ul><li>Cards: 7 days</li><li>Vouchers: instantly</li></ul>
    <footer>Copyright</footer></body></html>"""
    document = parse_document("kb/refunds.html", body)
    assert document.title == "Refunds | Example Air"
    assert document.sections[0].heading_path == ("Refunds",)
    assert document.sections[0].text == "You can ask for a refund online."
    assert document.sections[1].heading_path == ("Refunds", "How long it takes")
    assert document.sections[1].text == "Cards: 7 days\n\nVouchers: instantly"
    full_text = document.text
    for dropped in ("tracking", "color:red", "Home", "Copyright"):
        assert dropped not in full_text


def test_plain_text_keeps_paragraphs_and_takes_title_from_the_key():
    document = parse_document(
        "kb/check-in_rules.txt",
        b"First   paragraph\nwraps here.\r\n\r\n\r\nSecond paragraph.",
    )
    assert document.title == "Check in rules"
    assert document.sections[0].heading_path == ()
    assert (
        document.sections[0].text == "First paragraph wraps here.\n\nSecond paragraph."
    )


def test_utf8_bom_and_legacy_windows_encoding_are_decoded():
    assert decode_text("\ufeffCafé".encode("utf-8")) == ("Café", "utf-8")
    text, encoding = decode_text("Crème brûlée – 20 €".encode("cp1252"))
    assert (text, encoding) == ("Crème brûlée – 20 €", "cp1252")
    assert decode_text("Straße".encode("utf-16")) == ("Straße", "utf-16")


@pytest.mark.parametrize(
    ("key", "body", "reason"),
    [
        ("kb/empty.md", b"", "empty"),
        ("kb/blank.txt", b"  \n\t ", "empty"),
        ("kb/image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "NUL"),
        ("kb/junk.txt", bytes(range(1, 32)) * 20, "printable"),
        ("kb/undecodable.txt", b"caf\xe9 \x81\x8d\x8f", "undecodable"),
        ("kb/report.docx", b"PK\x03\x04", "unsupported file type '.docx'"),
        ("kb/README", b"hello", "unsupported file type '(none)'"),
        (
            "kb/only-markup.html",
            b"<html><script>x()</script><nav>menu</nav></html>",
            "no text content",
        ),
    ],
)
def test_unusable_documents_are_rejected_with_a_reason(key, body, reason):
    with pytest.raises(UnusableDocument) as raised:
        parse_document(key, body)
    assert reason in raised.value.reason


def test_oversized_documents_are_rejected_before_decoding():
    with pytest.raises(UnusableDocument, match="over the 1000-byte limit"):
        parse_document("kb/big.md", b"a" * 1001, max_bytes=1000)
    assert parse_document("kb/ok.md", b"a" * 1000, max_bytes=1000).text == "a" * 1000


def _one_page_pdf(text: str) -> bytes:
    """A minimal, valid one-page PDF with `text` in Helvetica (xref offsets computed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + obj + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, xref)
    )
    return out.getvalue()


def test_pdf_text_is_extracted_per_page():
    pytest.importorskip("pypdf", reason="PDF support is optional (pypdf)")
    document = parse_document(
        "kb/fees.pdf", _one_page_pdf("Seat selection costs 12 euros.")
    )
    assert document.sections[0].heading_path == ("Page 1",)
    assert "Seat selection costs 12 euros." in document.sections[0].text


def test_corrupt_pdf_is_unusable():
    pytest.importorskip("pypdf", reason="PDF support is optional (pypdf)")
    with pytest.raises(UnusableDocument, match="PDF"):
        parse_document("kb/broken.pdf", b"%PDF-1.4\nthis is not really a pdf")
    with pytest.raises(UnusableDocument, match="missing %PDF- header"):
        parse_document("kb/renamed.pdf", b"just text")
