"""Turn a knowledge-base object (Markdown, text, HTML, optionally PDF) into titled sections.

`parse_document` either returns a `ParsedDocument` or raises `UnusableDocument` with a reason
fit for a dead letter. It never logs document text.

Decoding: UTF-8 (a BOM is dropped), UTF-16 when the file starts with a UTF-16 BOM, then Windows-1252
as the fallback for legacy Office/Windows exports. The fallback is accepted only if the result
is printable text; anything else is rejected as undecodable rather than guessed at.
"""

from __future__ import annotations

import io
import re
from collections.abc import Collection
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePosixPath

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
MAX_PDF_PAGES = 2000
TEXT_EXTENSIONS = frozenset({".md", ".markdown", ".txt", ".html", ".htm"})
PDF_EXTENSIONS = frozenset({".pdf"})
SUPPORTED_EXTENSIONS = TEXT_EXTENSIONS | PDF_EXTENSIONS
MIN_PRINTABLE_RATIO = 0.95
FALLBACK_ENCODING = "cp1252"


class UnusableDocument(ValueError):
    """The object cannot be turned into text; `reason` says why (safe to store and log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path, e.g. ("Baggage", "Cabin bags")."""

    heading_path: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class ParsedDocument:
    key: str
    title: str
    sections: list[Section] = field(default_factory=list)
    encoding: str = "utf-8"

    @property
    def text(self) -> str:
        return "\n\n".join(section.text for section in self.sections)


def document_extension(key: str) -> str:
    return PurePosixPath(key).suffix.lower()


def is_supported_key(key: str, document_types: Collection[str] = SUPPORTED_EXTENSIONS) -> bool:
    return not key.endswith("/") and document_extension(key) in document_types


def parse_document(
    key: str, body: bytes, max_bytes: int = DEFAULT_MAX_BYTES
) -> ParsedDocument:
    extension = document_extension(key)
    if extension not in SUPPORTED_EXTENSIONS:
        raise UnusableDocument(f"unsupported file type {extension or '(none)'!r}")
    if len(body) > max_bytes:
        raise UnusableDocument(
            f"document is {len(body)} bytes, over the {max_bytes}-byte limit"
        )
    if not body.strip():
        raise UnusableDocument("document is empty")

    if extension in PDF_EXTENSIONS:
        (title, sections), encoding = _parse_pdf(body), "pdf"
    else:
        text, encoding = decode_text(body)
        if extension in (".html", ".htm"):
            title, sections = _parse_html(text)
        elif extension in (".md", ".markdown"):
            title, sections = _parse_markdown(text)
        else:
            title, sections = "", [Section((), _normalise_block(text))]

    sections = [section for section in sections if section.text]
    if not sections:
        raise UnusableDocument("document has no text content")
    return ParsedDocument(
        key=key,
        title=title or _title_from_key(key),
        sections=sections,
        encoding=encoding,
    )


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def decode_text(body: bytes) -> tuple[str, str]:
    """Decode bytes to text, returning (text, encoding), or raise UnusableDocument."""
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return _require_printable(body.decode("utf-16"), "utf-16"), "utf-16"
        except UnicodeDecodeError as error:
            raise UnusableDocument(f"invalid UTF-16 at byte {error.start}") from None
    if b"\x00" in body:
        raise UnusableDocument("binary content (NUL bytes)")
    try:
        return _require_printable(body.decode("utf-8-sig"), "utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        text = body.decode(FALLBACK_ENCODING)
    except UnicodeDecodeError:
        raise UnusableDocument(
            f"undecodable: neither UTF-8 nor {FALLBACK_ENCODING}"
        ) from None
    return _require_printable(text, FALLBACK_ENCODING), FALLBACK_ENCODING


def printable_ratio(text: str) -> float:
    if not text:
        return 1.0
    printable = sum(1 for char in text if char.isprintable() or char in "\n\r\t\f")
    return printable / len(text)


def _require_printable(text: str, encoding: str) -> str:
    ratio = printable_ratio(text)
    if ratio < MIN_PRINTABLE_RATIO:
        raise UnusableDocument(
            f"binary or garbled content: only {ratio:.0%} printable as {encoding}"
        )
    return text


# --------------------------------------------------------------------------------------------
# Text normalisation
# --------------------------------------------------------------------------------------------

_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def _normalise_block(text: str) -> str:
    """NFC, unified newlines, single spaces, paragraphs separated by exactly one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = [
        " ".join(
            _SPACES.sub(" ", line).strip()
            for line in block.splitlines()
            if line.strip()
        )
        for block in _BLANK_LINES.split(text)
    ]
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph)


def _title_from_key(key: str) -> str:
    return re.sub(r"[-_]+", " ", PurePosixPath(key).stem).strip().capitalize()


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------

# Every pattern runs in time linear in the line: a repeated part never crosses a character that
# could start another match (a lazy `.+?` or `[^)]*` could, which made a long hostile line cost
# quadratic time — a 1 MB one-line document about an hour).
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*)$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_LINK = re.compile(r"!?\[([^\[\]\n]*)\]\([^()\[\]\s]*\)")
_EMPHASIS = [(marker, re.compile(pattern)) for marker, pattern in (
    ("**", r"\*\*(?=\S)([^*\n]+?)(?<=\S)\*\*"), ("__", r"__(?=\S)([^_\n]+?)(?<=\S)__"),
    ("*", r"\*(?=\S)([^*\n]+?)(?<=\S)\*"), ("`", r"`([^`\n]+)`"))]


def _parse_markdown(text: str) -> tuple[str, list[Section]]:
    text = _without_front_matter(text.replace("\r\n", "\n").replace("\r", "\n"))
    builder = _SectionBuilder()
    lines = text.split("\n")
    in_fence = False
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            builder.add_text(line)
            continue
        atx = _ATX_HEADING.match(line)
        next_line = lines[index + 1] if index + 1 < len(lines) else ""
        if atx:
            builder.start_section(len(atx.group(1)),
                                  _inline_markdown(_without_closing_hashes(atx.group(2))))
        elif (
            line.strip()
            and _SETEXT_UNDERLINE.match(next_line)
            and not builder.line_is_paragraph_continuation()
        ):
            builder.start_section(
                1 if next_line.strip().startswith("=") else 2,
                _inline_markdown(line.strip()),
            )
            builder.skip_next_line = True
        elif builder.skip_next_line:
            builder.skip_next_line = False
        else:
            builder.add_text(_inline_markdown(line))
    return builder.first_title, builder.sections()


def _inline_markdown(line: str) -> str:
    if "[" in line:
        line = _LINK.sub(r"\1", line)
    for marker, emphasis in _EMPHASIS:
        if marker in line:
            line = emphasis.sub(r"\1", line)
    return line


def _without_front_matter(text: str) -> str:
    """The text without a leading YAML front matter block (`---` ... `---`)."""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 3)
        if end != -1:
            return text[end + len("\n---\n"):]
    return text


def _without_closing_hashes(heading: str) -> str:
    """An ATX heading's text without its optional closing sequence (`## Title ##`)."""
    heading = heading.rstrip(" \t")
    bare = heading.rstrip("#")
    if bare != heading and (not bare or bare[-1] in " \t"):
        heading = bare.rstrip(" \t")
    return heading


class _SectionBuilder:
    """Collects lines under the current heading path; h1..h6 levels set the path depth."""

    def __init__(self) -> None:
        self._path: list[tuple[int, str]] = []
        self._lines: list[str] = []
        self._sections: list[Section] = []
        self.first_title = ""
        self.skip_next_line = False

    def start_section(self, level: int, heading: str) -> None:
        self._flush()
        heading = " ".join(heading.split())
        if not heading:
            return
        if level == 1 and not self.first_title:
            self.first_title = heading
        while self._path and self._path[-1][0] >= level:
            self._path.pop()
        self._path.append((level, heading))

    def add_text(self, line: str) -> None:
        self._lines.append(line)

    def line_is_paragraph_continuation(self) -> bool:
        # A "Title\n---" is a heading only when Title starts a paragraph (else "---" is a rule).
        return bool(self._lines) and bool(self._lines[-1].strip())

    def sections(self) -> list[Section]:
        self._flush()
        return self._sections

    def _flush(self) -> None:
        text = _normalise_block("\n".join(self._lines))
        self._lines = []
        if text:
            self._sections.append(
                Section(tuple(heading for _, heading in self._path), text)
            )


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_SKIPPED_TAGS = frozenset(
    {
        "script",
        "style",
        "nav",
        "noscript",
        "template",
        "svg",
        "head",
        "footer",
        "aside",
        "form",
        "iframe",
    }
)
_HEADING_TAGS = {f"h{level}": level for level in range(1, 7)}
_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "li",
        "ul",
        "ol",
        "br",
        "tr",
        "table",
        "section",
        "article",
        "main",
        "header",
        "blockquote",
        "pre",
        "dd",
        "dt",
        "dl",
        "hr",
        "figcaption",
        "td",
        "th",
    }
)
_VOID_TAGS = frozenset(
    {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
)


class _HtmlTextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.builder = _SectionBuilder()
        self.title = ""
        self._skip_depth = 0
        self._in_title = False
        self._heading_level: int | None = None
        self._heading_parts: list[str] = []
        self._paragraph: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS and tag not in _VOID_TAGS:
            self._skip_depth += 1
            return
        if tag == "title":
            self._in_title = True
        elif tag in _HEADING_TAGS and not self._skip_depth:
            self._end_paragraph()
            self._heading_level, self._heading_parts = _HEADING_TAGS[tag], []
        elif tag in _BLOCK_TAGS:
            self._end_paragraph()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS and tag not in _VOID_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if tag == "title":
            self._in_title = False
        elif tag in _HEADING_TAGS and self._heading_level is not None:
            self.builder.start_section(
                self._heading_level, "".join(self._heading_parts)
            )
            self._heading_level = None
        elif tag in _BLOCK_TAGS:
            self._end_paragraph()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif self._skip_depth:
            return
        elif self._heading_level is not None:
            self._heading_parts.append(data)
        else:
            self._paragraph.append(data)

    def close(self) -> None:
        super().close()
        self._end_paragraph()

    def _end_paragraph(self) -> None:
        text = " ".join("".join(self._paragraph).split())
        self._paragraph = []
        if text:
            self.builder.add_text(text)
            self.builder.add_text("")


def _parse_html(text: str) -> tuple[str, list[Section]]:
    extractor = _HtmlTextExtractor()
    extractor.feed(text)
    extractor.close()
    title = " ".join(extractor.title.split()) or extractor.builder.first_title
    return title, extractor.builder.sections()


# --------------------------------------------------------------------------------------------
# PDF (optional: needs the pure-Python `pypdf`)
# --------------------------------------------------------------------------------------------


def _parse_pdf(body: bytes) -> tuple[str, list[Section]]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import LimitReachedError
    except ImportError:
        raise UnusableDocument(
            "PDF support is not installed (needs the pypdf package)"
        ) from None
    if not body.startswith(b"%PDF-"):
        raise UnusableDocument("not a PDF file (missing %PDF- header)")
    try:
        reader = PdfReader(io.BytesIO(body))
        if reader.is_encrypted:
            raise UnusableDocument("PDF is encrypted")
        if len(reader.pages) > MAX_PDF_PAGES:
            raise UnusableDocument(f"PDF has {len(reader.pages)} pages, over the "
                                   f"{MAX_PDF_PAGES}-page limit")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = str((reader.metadata or {}).get("/Title") or "").strip()
    except UnusableDocument:
        raise
    except LimitReachedError:
        raise UnusableDocument("PDF stream decompresses past pypdf's limit (a compression "
                               "bomb?)") from None
    except Exception as error:  # noqa: BLE001 — hostile bytes can break pypdf in any way
        raise UnusableDocument(f"unreadable PDF: {type(error).__name__}") from None
    sections = [
        Section((f"Page {number}",), _normalise_block(text))
        for number, text in enumerate(pages, 1)
    ]
    return title, sections
