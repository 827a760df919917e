"""The fine-tuning dataset: well-rated turns in chat format, PII masked, near duplicates removed.

Each event is judged in Kafka position order (topic, partition, offset) and kept only if it
passes every step; the first step it fails is its filter reason in the manifest:

1. duplicate_turn   — its (conversation_id, turn_id) was already seen (redelivery).
2. erased_customer  — its customer_ref is in the erased set (right to erasure).
3. flagged          — its turn key is in the flagged set (e.g. moderation, wrong answer).
4. not_well_rated   — neither a thumbs up nor a score >= `min_score` (default 4).
5. empty_question / empty_answer — blank after trimming.
6. near_duplicate   — after masking, `question + "\\n" + answer` is a near duplicate of an
                      example kept before it (see `near_duplicates`; Jaccard >= 0.8 on
                      5-character shingles by default).

An example is `{"messages": [system, user = question, assistant = answer]}` with the question
and answer masked by the `PiiMasker` passed in, extended for each turn with the identifiers the
product knows of its customer (`known_by_ref`: customer_ref → `KnownIdentifiers`). The JSONL is one example per line, UTF-8,
`\\n`-terminated; its SHA-256 names the version (`ft-<first 16 hex digits>`), so the same
content always gets the same version and a rebuild overwrites instead of duplicating.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from rag_assets.customers.known_identifiers import KnownIdentifiers
from rag_assets.feedback.events import FeedbackEvent
from rag_assets.feedback.near_duplicates import NearDuplicateConfig, near_duplicates
from rag_assets.feedback.pii import PiiMasker


class ErasedRefs(Protocol):
    """What stands for the erased customers: `ref in it` and how many it holds (the
    suppression list's `RefMatcher`, or a plain set of references)."""

    def __contains__(self, ref: object) -> bool: ...

    def __len__(self) -> int: ...


PII_MASKED = ["email", "card", "phone", "name", "iban", "national_id", "passport",
              "date_of_birth", "address", "loyalty_number",
              "the customer's own identifiers (identity graph and profile), in any spelling"]
DEFAULT_SYSTEM_PROMPT = "You are a helpful, accurate travel assistant for an airline's customers."


class FilterReason(StrEnum):
    DUPLICATE_TURN = "duplicate_turn"
    ERASED_CUSTOMER = "erased_customer"
    FLAGGED = "flagged"
    NOT_WELL_RATED = "not_well_rated"
    EMPTY_QUESTION = "empty_question"
    EMPTY_ANSWER = "empty_answer"
    NEAR_DUPLICATE = "near_duplicate"


@dataclass(frozen=True)
class FinetuneConfig:
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    min_score: float = 4.0
    near_duplicates: NearDuplicateConfig = field(default_factory=NearDuplicateConfig)


@dataclass(frozen=True)
class FinetuneDataset:
    examples: tuple[dict[str, Any], ...]
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def to_jsonl(self) -> bytes:
        return _jsonl(self.examples)


def build_finetune_dataset(
    events: Iterable[FeedbackEvent],
    *,
    erased_customers: ErasedRefs = frozenset(),
    flagged_turns: Set[tuple[str, str]] = frozenset(),
    masker: PiiMasker | None = None,
    config: FinetuneConfig = FinetuneConfig(),
    known_by_ref: Mapping[str, KnownIdentifiers] | None = None,
) -> FinetuneDataset:
    masker_of = _CustomerMaskers(masker or PiiMasker(), known_by_ref or {})
    ordered = sorted(events, key=lambda e: (e.topic, e.partition, e.offset))
    filtered = {reason: 0 for reason in FilterReason}
    selected, seen = [], set()
    for event in ordered:
        reason = _filter_reason(event, seen, erased_customers, flagged_turns, config)
        seen.add(event.turn_key)
        if reason is None:
            selected.append(_example(event, masker_of(event.customer_ref), config.system_prompt))
        else:
            filtered[reason] += 1

    dropped = near_duplicates(
        [_dedup_text(example) for example in selected], config.near_duplicates
    )
    examples = tuple(example for index, example in enumerate(selected) if index not in dropped)
    filtered[FilterReason.NEAR_DUPLICATE] = len(dropped)

    content = _jsonl(examples)
    manifest = _manifest(
        ordered, examples, filtered, content, erased_customers, flagged_turns, config
    )
    return FinetuneDataset(examples, manifest)


def is_well_rated(event: FeedbackEvent, min_score: float = 4.0) -> bool:
    if event.rating_score is not None:
        return event.rating_score >= min_score
    return event.rating_up is True


def _filter_reason(
    event: FeedbackEvent,
    seen: set[tuple[str, str]],
    erased_customers: ErasedRefs,
    flagged_turns: Set[tuple[str, str]],
    config: FinetuneConfig,
) -> FilterReason | None:
    if event.turn_key in seen:
        return FilterReason.DUPLICATE_TURN
    if event.customer_ref is not None and event.customer_ref in erased_customers:
        return FilterReason.ERASED_CUSTOMER
    if event.turn_key in flagged_turns:
        return FilterReason.FLAGGED
    if not is_well_rated(event, config.min_score):
        return FilterReason.NOT_WELL_RATED
    if not event.question.strip():
        return FilterReason.EMPTY_QUESTION
    if not event.answer.strip():
        return FilterReason.EMPTY_ANSWER
    return None


class _CustomerMaskers:
    """The masker of each customer's turns: the base one with their known identifiers, built
    once per reference."""

    def __init__(self, base: PiiMasker, known_by_ref: Mapping[str, KnownIdentifiers]) -> None:
        self._base, self._known, self._maskers = base, known_by_ref, {}

    def __call__(self, ref: str | None) -> PiiMasker:
        if ref not in self._known:
            return self._base
        if ref not in self._maskers:
            self._maskers[ref] = self._base.with_known(self._known[ref])
        return self._maskers[ref]


def _example(event: FeedbackEvent, masker: PiiMasker, system_prompt: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": masker.mask(event.question.strip())},
            {"role": "assistant", "content": masker.mask(event.answer.strip())},
        ]
    }


def _dedup_text(example: dict[str, Any]) -> str:
    _, user, assistant = example["messages"]
    return f"{user['content']}\n{assistant['content']}"


def _jsonl(examples: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(example, ensure_ascii=False) + "\n" for example in examples).encode(
        "utf-8"
    )


def _manifest(
    events: list[FeedbackEvent],
    examples: tuple[dict[str, Any], ...],
    filtered: dict[FilterReason, int],
    content: bytes,
    erased_customers: ErasedRefs,
    flagged_turns: Set[tuple[str, str]],
    config: FinetuneConfig,
) -> dict[str, Any]:
    digest = hashlib.sha256(content).hexdigest()
    dedup = config.near_duplicates
    return {
        "version": f"ft-{digest[:16]}",
        "content_sha256": digest,
        "records_in": len(events),
        "records_out": len(examples),
        "filtered": {str(reason): count for reason, count in filtered.items()},
        "near_duplicates_removed": filtered[FilterReason.NEAR_DUPLICATE],
        "filters": {
            "well_rated": f"thumbs up, or score >= {config.min_score:g}",
            "erased_customers": len(erased_customers),
            "flagged_turns": len(flagged_turns),
            "pii_masked": PII_MASKED,
            "near_duplicate": {
                "method": "char shingles, MinHash LSH candidates, exact Jaccard",
                "threshold": dedup.threshold,
                "shingle_chars": dedup.shingle_chars,
                "permutations": dedup.permutations,
                "bands": dedup.bands,
            },
        },
        "system_prompt": config.system_prompt,
        "source_offsets": _offset_ranges(events),
    }


def _offset_ranges(events: list[FeedbackEvent]) -> list[dict[str, Any]]:
    ranges: dict[tuple[str, int], list[int]] = {}
    for event in events:
        bounds = ranges.setdefault((event.topic, event.partition), [event.offset, event.offset])
        bounds[0], bounds[1] = (
            min(bounds[0], event.offset),
            max(bounds[1], event.offset),
        )
    return [
        {
            "topic": topic,
            "partition": partition,
            "first_offset": first,
            "last_offset": last,
        }
        for (topic, partition), (first, last) in sorted(ranges.items())
    ]
