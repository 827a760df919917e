"""Relevance evaluation: labelled questions, ranking metrics, and the labelled corpora.

A labelled corpus is a set of documents (key → body, uploaded as they are) and questions, each
naming the document that answers it. The metrics are computed over the ranked document keys a
search returns (a document counts once, at its best chunk's rank):

* hit@k — the answering document is among the first k;
* MRR — mean of 1/rank of the answering document (0 when not returned);
* nDCG@10 — with one relevant document, 1/log2(1 + rank) when rank <= 10.

Corpora:

* `python_faq_corpus` — the Python FAQ (the reStructuredText sources that Debian's `python3-doc`
  package installs under /usr/share/doc/python3.X/html/_sources/faq/). Every FAQ entry is a
  heading that asks a question and the passage under it that answers it: the question becomes a
  labelled query and the answer passage (without the question) one document, under the page
  title and category it sits in. The questions and answers are the Python documentation's own.
* `demo_corpus` — the demo airline's documents (rag_assets/demo/documents.py) with questions
  written by this project (so they can share our wording: reported separately).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PYTHON_FAQ_GLOB = "/usr/share/doc/python3*/html/_sources/faq"
PYTHON_FAQ_INSTALL = "apt-get install -y python3-doc"


@dataclass(frozen=True)
class LabelledQuestion:
    question: str
    doc_key: str  # the document that answers it (key below the knowledge prefix)


@dataclass(frozen=True)
class LabelledCorpus:
    name: str
    source: str  # where the documents and questions come from, for the report
    documents: dict[str, str]
    questions: tuple[LabelledQuestion, ...]


@dataclass(frozen=True)
class Scores:
    questions: int
    hit_at_1: float
    hit_at_5: float
    mrr: float
    ndcg_at_10: float


def answer_rank(ranked_doc_keys: Sequence[str], relevant: str) -> int | None:
    """1-based rank of the relevant document among distinct keys, None if absent."""
    seen: list[str] = []
    for key in ranked_doc_keys:
        if key not in seen:
            seen.append(key)
            if key == relevant:
                return len(seen)
    return None


def score_ranks(ranks: Sequence[int | None]) -> Scores:
    if not ranks:
        raise ValueError("no questions to score")
    count = len(ranks)

    def mean(values: Iterable[float]) -> float:
        return sum(values) / count

    return Scores(
        questions=count,
        hit_at_1=mean(1.0 for rank in ranks if rank == 1),
        hit_at_5=mean(1.0 for rank in ranks if rank is not None and rank <= 5),
        mrr=mean(1.0 / rank for rank in ranks if rank is not None),
        ndcg_at_10=mean(1.0 / math.log2(1 + rank) for rank in ranks
                        if rank is not None and rank <= 10),
    )


# --------------------------------------------------------------------------------------------
# The Python FAQ
# --------------------------------------------------------------------------------------------

_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+<>:.])\1{2,}\s*$")
_ROLE = re.compile(r":[\w:.-]+:`~?([^`<]*?)\s*(?:<[^>]*>)?`")
_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`__?")
_LITERAL = re.compile(r"``(.+?)``")
_DIRECTIVE = re.compile(r"^\s*\.\.\s+([\w-]+)::\s*(.*)$")
_TARGET = re.compile(r"^\s*\.\.\s+(_[^:]+:|\|).*$|^\s*\.\.\s*$")
_KEEP_DIRECTIVE_ARGUMENT = {"seealso", "note", "warning", "versionadded", "versionchanged"}


def find_python_faq_dir(pattern: str = PYTHON_FAQ_GLOB) -> Path:
    """The installed FAQ sources; FileNotFoundError names the package that installs them."""
    root, _, glob = pattern.rpartition("/python3")
    candidates = sorted(Path(root).glob("python3" + glob)) if root else []
    found = sorted({path.resolve() for path in candidates
                    if path.is_dir() and any(path.glob("*.rst.txt"))})
    if not found:
        raise FileNotFoundError(
            f"the Python FAQ sources are not installed ({pattern}): run `{PYTHON_FAQ_INSTALL}`")
    return found[-1]


def rst_to_markdown_text(lines: Sequence[str]) -> str:
    """Plain readable text of an reStructuredText body: roles, links and directives unwrapped."""
    out: list[str] = []
    for line in lines:
        directive = _DIRECTIVE.match(line)
        if directive:
            name, argument = directive.groups()
            if name in _KEEP_DIRECTIVE_ARGUMENT and argument:
                out.append(argument)
            continue
        if _TARGET.match(line) or line.strip().startswith(":") and line.strip().endswith(":") \
                and " " not in line.strip():
            continue
        line = _ROLE.sub(r"\1", line)
        line = _LINK.sub(r"\1", line)
        line = _LITERAL.sub(r"\1", line)
        if line.rstrip().endswith("::"):
            line = line.rstrip()[:-1]
        out.append(line.rstrip())
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


@dataclass(frozen=True)
class _Heading:
    line: int  # index of the title line
    end: int  # index of the first line after the heading's adornment
    title: str
    style: str


def _rst_headings(lines: Sequence[str]) -> list[_Heading]:
    headings: list[_Heading] = []
    index = 0
    while index + 1 < len(lines):
        title, under = lines[index].strip(), lines[index + 1]
        overline = index > 0 and _ADORNMENT.match(lines[index - 1]) is not None
        if title and not _ADORNMENT.match(lines[index]) and _ADORNMENT.match(under) \
                and len(under.strip()) >= len(title) and not lines[index].startswith(" "):
            style = ("over" if overline else "") + under.strip()[0]
            headings.append(_Heading(index, index + 2, title, style))
            index += 2
            continue
        index += 1
    return headings


def faq_entries(source: str) -> tuple[str, list[tuple[tuple[str, ...], str, str]]]:
    """(page title, [(category path, question, answer text)]) of one FAQ page's rst source."""
    lines = source.splitlines()
    headings = _rst_headings(lines)
    if not headings:
        raise ValueError("no headings: not an FAQ page")
    styles: list[str] = []
    path: list[str] = []
    entries: list[tuple[tuple[str, ...], str, str]] = []
    for number, heading in enumerate(headings):
        if heading.style not in styles:
            styles.append(heading.style)
        level = styles.index(heading.style)
        del path[level:]
        path.append(heading.title)
        end = headings[number + 1].line if number + 1 < len(headings) else len(lines)
        if number + 1 < len(headings) and lines[end - 1].strip() and \
                _ADORNMENT.match(lines[end - 1]):
            end -= 1  # the next heading's overline
        if heading.title.endswith("?") and level > 0:
            answer = rst_to_markdown_text(lines[heading.end:end])
            if len(answer.split()) >= 5:
                entries.append((tuple(path[1:-1]), heading.title, answer))
    return headings[0].title, entries


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def python_faq_corpus(faq_dir: Path | None = None) -> LabelledCorpus:
    """One Markdown document per FAQ answer (page title and category as headings, the question
    itself left out), and the question as its labelled query."""
    faq_dir = faq_dir or find_python_faq_dir()
    documents: dict[str, str] = {}
    questions: list[LabelledQuestion] = []
    for page in sorted(faq_dir.glob("*.rst.txt")):
        if page.name.startswith("index."):
            continue
        title, entries = faq_entries(page.read_text(encoding="utf-8"))
        for number, (categories, question, answer) in enumerate(entries, start=1):
            key = f"python-faq/{page.name.split('.')[0]}/{number:03d}-{_slug(question)}.md"
            headings = [f"# {title}", *(f"## {category}" for category in categories)]
            documents[key] = "\n\n".join([*headings, answer]) + "\n"
            questions.append(LabelledQuestion(question, key))
    return LabelledCorpus(
        name="python-faq",
        source=f"Python FAQ reStructuredText sources, {faq_dir} (Debian python3-doc)",
        documents=documents,
        questions=tuple(questions),
    )


# --------------------------------------------------------------------------------------------
# The Debian FAQ
# --------------------------------------------------------------------------------------------

DEBIAN_FAQ_TEXT = "/usr/share/doc/debian/FAQ/debian-faq.en.txt.gz"
DEBIAN_FAQ_INSTALL = "apt-get install -y debian-faq"
_DEBIAN_SECTION = re.compile(r"^(\d+(?:\.\d+)+)\.[\s\u00a0]+(\S.*)$")
_DEBIAN_CHAPTER = re.compile(r"^Chapter[\s\u00a0]+(\d+)\.[\s\u00a0]+(\S.*)$")


def debian_faq_entries(text: str) -> list[tuple[str, str, str]]:
    """[(chapter title, question, answer text)] of the Debian FAQ's plain-text edition.

    A section heading starts at column 0 ("4.4. How source code compatible is ...?", possibly
    wrapped over several lines); its body is the indented text up to the next heading."""
    lines = text.replace("\u00a0", " ").splitlines()
    entries: list[tuple[str, str, str]] = []
    chapter = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        chapter_match = _DEBIAN_CHAPTER.match(line)
        section = _DEBIAN_SECTION.match(line)
        index += 1
        if chapter_match:
            chapter = chapter_match.group(2).strip()
            continue
        if not section:
            continue
        title = [section.group(2).strip()]
        while index < len(lines) and lines[index].strip() and not lines[index].startswith(" "):
            title.append(lines[index].strip())
            index += 1
        body: list[str] = []
        while index < len(lines) and not (_DEBIAN_SECTION.match(lines[index])
                                          or _DEBIAN_CHAPTER.match(lines[index])
                                          or lines[index].startswith("----")):
            body.append(lines[index])
            index += 1
        question = " ".join(title)
        answer = re.sub(r"\n{3,}", "\n\n", "\n".join(part.strip() for part in body)).strip()
        if question.endswith("?") and len(answer.split()) >= 5:
            entries.append((chapter, question, answer))
    return entries


def debian_faq_corpus(path: str = DEBIAN_FAQ_TEXT) -> LabelledCorpus:
    """One Markdown document per Debian FAQ answer (chapter as heading, question left out)."""
    import gzip

    if not Path(path).is_file():
        raise FileNotFoundError(
            f"the Debian FAQ is not installed ({path}): run `{DEBIAN_FAQ_INSTALL}`")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        entries = debian_faq_entries(handle.read())
    documents: dict[str, str] = {}
    questions: list[LabelledQuestion] = []
    for number, (chapter, question, answer) in enumerate(entries, start=1):
        key = f"debian-faq/{number:03d}-{_slug(question)}.md"
        documents[key] = f"# Debian FAQ\n\n## {chapter}\n\n{answer}\n"
        questions.append(LabelledQuestion(question, key))
    return LabelledCorpus("debian-faq", f"Debian FAQ plain-text edition, {path} (Debian "
                          "debian-faq)", documents, tuple(questions))


def merged_corpus(name: str, corpora: Sequence[LabelledCorpus]) -> LabelledCorpus:
    """Several corpora indexed together (each one's documents are the others' distractors)."""
    documents: dict[str, str] = {}
    for corpus in corpora:
        clash = documents.keys() & corpus.documents.keys()
        if clash:
            raise ValueError(f"document keys in two corpora: {sorted(clash)[:3]}")
        documents.update(corpus.documents)
    return LabelledCorpus(name, "; ".join(corpus.source for corpus in corpora), documents,
                          tuple(q for corpus in corpora for q in corpus.questions))


def evaluate(ranked_doc_keys: Callable[[str], Sequence[str]],
             questions: Sequence[LabelledQuestion]) -> tuple[Scores, list[int | None]]:
    """Scores of a search (question → ranked document keys) and each question's answer rank."""
    ranks = [answer_rank(ranked_doc_keys(item.question), item.doc_key) for item in questions]
    return score_ranks(ranks), ranks
