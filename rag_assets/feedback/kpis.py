"""KPI definitions per (window, model_id).

The input is one `TurnFact` per accepted turn — the columns the KPI tables are recomputed from,
so production stores exactly these per turn and recomputes the windows a batch touched from
them (in PostgreSQL, `kpi_store.kpi_rows_sql`, with these definitions and the same rounding).
`compute_kpis` over every accepted turn is the oracle.

Definitions, for the turns of one model in one window:

* turns                — number of turns (turn keys are unique; a duplicate is an error here).
* conversations        — distinct conversation ids. A conversation spanning two windows counts in
                         both, so this column does not add up across windows.
* rated_share          — turns with any rating (thumb or score) / turns.
* thumbs_up_rate       — positive / polar ratings, where positive = thumbs up or score >= 4 and
                         negative = thumbs down or score <= 2; scores between (3) are neither.
                         None when there is no polar rating.
* mean_rating          — mean of the 1–5 scores; thumbs are not converted to scores. None when no
                         turn was scored.
* latency_p50/p95_ms   — continuous percentiles with linear interpolation between closest ranks,
                         the definition of PostgreSQL's `percentile_cont` (and NumPy's default
                         "linear" method): position p·(n−1) in the sorted values.
* satisfied/neutral/dissatisfied/unknown — counts of turns per satisfaction category.
* with_context_share   — turns whose answer had at least one retrieved id / turns.

Floating-point results do not depend on the order of the facts (sorted values, `math.fsum`),
so recomputing a window from stored rows gives exactly the oracle's numbers.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from rag_assets.feedback.events import FeedbackEvent
from rag_assets.feedback.sentiment import Satisfaction
from rag_assets.feedback.windows import (
    ALL_GRANULARITIES,
    Granularity,
    Window,
    window_of,
)


@dataclass(frozen=True)
class TurnFact:
    conversation_id: str
    turn_id: str
    model_id: str
    event_time: datetime
    latency_ms: float
    has_context: bool
    rating_up: bool | None
    rating_score: float | None
    satisfaction: Satisfaction

    @classmethod
    def from_event(cls, event: FeedbackEvent, satisfaction: Satisfaction) -> TurnFact:
        return cls(
            conversation_id=event.conversation_id,
            turn_id=event.turn_id,
            model_id=event.model_id,
            event_time=event.ts,
            latency_ms=event.latency_ms,
            has_context=bool(event.retrieved_ids),
            rating_up=event.rating_up,
            rating_score=event.rating_score,
            satisfaction=satisfaction,
        )

    @property
    def turn_key(self) -> tuple[str, str]:
        return (self.conversation_id, self.turn_id)

    @property
    def is_rated(self) -> bool:
        return self.rating_up is not None or self.rating_score is not None


@dataclass(frozen=True)
class KpiRow:
    granularity: Granularity
    window_start: datetime
    window_end: datetime
    model_id: str
    turns: int
    conversations: int
    rated_turns: int
    rated_share: float
    polar_ratings: int
    positive_ratings: int
    thumbs_up_rate: float | None
    scored_turns: int
    mean_rating: float | None
    latency_p50_ms: float
    latency_p95_ms: float
    satisfied: int
    neutral: int
    dissatisfied: int
    unknown: int
    turns_with_context: int
    with_context_share: float

    @property
    def window(self) -> Window:
        return Window(self.granularity, self.window_start)

    def as_record(self) -> dict[str, object]:
        record = asdict(self)
        record["granularity"] = str(self.granularity)
        return record


def percentile_cont(values: Sequence[float], fraction: float) -> float:
    """PostgreSQL's `percentile_cont(fraction)`: linear interpolation at position f·(n−1)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must be within [0, 1]")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = math.ceil(position)
    # Same arithmetic as PostgreSQL's percentile_cont_float8 so both sides round alike.
    return ordered[lower] + (position - lower) * (ordered[upper] - ordered[lower])


def compute_kpis(
    facts: Iterable[TurnFact], granularities: Iterable[Granularity] = ALL_GRANULARITIES
) -> list[KpiRow]:
    """KPI rows for every (window, model_id) that has at least one turn, in a stable order."""
    facts = list(facts)
    _require_unique_turns(facts)
    groups: dict[tuple[Window, str], list[TurnFact]] = defaultdict(list)
    for granularity in granularities:
        for fact in facts:
            groups[(window_of(fact.event_time, granularity), fact.model_id)].append(fact)
    return [
        _kpi_row(window, model_id, group) for (window, model_id), group in sorted(groups.items())
    ]


def kpis_for_windows(facts: Iterable[TurnFact], windows: Iterable[Window]) -> list[KpiRow]:
    """KPI rows of the given windows only; `facts` may hold turns of other windows too."""
    wanted = set(windows)
    granularities = {window.granularity for window in wanted}
    return [row for row in compute_kpis(facts, sorted(granularities)) if row.window in wanted]


def _require_unique_turns(facts: Sequence[TurnFact]) -> None:
    repeated = [key for key, count in Counter(f.turn_key for f in facts).items() if count > 1]
    if repeated:
        raise ValueError(f"duplicated turns would be counted twice: {repeated[:5]}")


def _kpi_row(window: Window, model_id: str, facts: list[TurnFact]) -> KpiRow:
    turns = len(facts)
    rated = sum(fact.is_rated for fact in facts)
    polar = [fact.rating_up for fact in facts if fact.rating_up is not None]
    positive = sum(polar)
    scores = [fact.rating_score for fact in facts if fact.rating_score is not None]
    latencies = [fact.latency_ms for fact in facts]
    satisfaction = Counter(fact.satisfaction for fact in facts)
    with_context = sum(fact.has_context for fact in facts)
    return KpiRow(
        granularity=window.granularity,
        window_start=window.start,
        window_end=window.end,
        model_id=model_id,
        turns=turns,
        conversations=len({fact.conversation_id for fact in facts}),
        rated_turns=rated,
        rated_share=rated / turns,
        polar_ratings=len(polar),
        positive_ratings=positive,
        thumbs_up_rate=positive / len(polar) if polar else None,
        scored_turns=len(scores),
        mean_rating=math.fsum(scores) / len(scores) if scores else None,
        latency_p50_ms=percentile_cont(latencies, 0.5),
        latency_p95_ms=percentile_cont(latencies, 0.95),
        satisfied=satisfaction[Satisfaction.SATISFIED],
        neutral=satisfaction[Satisfaction.NEUTRAL],
        dissatisfied=satisfaction[Satisfaction.DISSATISFIED],
        unknown=satisfaction[Satisfaction.UNKNOWN],
        turns_with_context=with_context,
        with_context_share=with_context / turns,
    )
