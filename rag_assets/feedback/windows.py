"""Event-time windows, the watermark, and how each arriving event is treated.

Windows are hourly and daily, aligned to UTC: `[start, start + 1h)` and `[00:00, 24:00)`.

Watermark. For each Kafka topic-partition we keep the greatest event time of the events applied
from it (`frontier`). The watermark is `frontier - allowed_lateness`. It is tracked per partition,
not globally, because runs for different partitions finish in any order: a global maximum would
make one partition's verdicts depend on how far another partition's runs had got. Producers key
`app.feedback` by conversation id, so the redeliveries of a turn stay in one partition.

Events of a batch are taken in offset order, one at a time, and each one sees the frontier left by
the events before it (in earlier batches and earlier in this batch):

* duplicate       — its (conversation_id, turn_id) was already applied: ignored.
* too late        — event time < watermark: dropped from the KPIs, counted per window (it still
                    lands in the conversation lake, so it is not lost). The count is of
                    deliveries: a too-late turn delivered twice is counted twice.
* late, accepted  — not too late, but its hourly window is older than the frontier's: it
                    updates a window that had already been reported.
* on time         — its hourly window is the frontier's or a newer one.

Accepted events (on time or late) move the frontier forward. Because a verdict depends only on
the applied events of the partition before it in offset order, the outcome does not depend on how
the stream was cut into batches, and a retried batch gives the same answer: its offsets and the
new frontier are committed in the same PostgreSQL transaction as its facts, so a retry starts
from exactly the state the failed attempt started from. Persist `WatermarkState.frontiers` (one
timestamp per topic-partition, next to the committed offset). It equals the greatest event time
of the turns applied from that partition, so a store that keeps each turn's partition can also
rebuild it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum

from rag_assets.feedback.events import FeedbackEvent

PartitionKey = tuple[str, int]
TurnKey = tuple[str, str]


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"

    @property
    def length(self) -> timedelta:
        return timedelta(hours=1) if self is Granularity.HOUR else timedelta(days=1)


ALL_GRANULARITIES = (Granularity.HOUR, Granularity.DAY)


@dataclass(frozen=True, order=True)
class Window:
    granularity: Granularity
    start: datetime

    @property
    def end(self) -> datetime:
        return self.start + self.granularity.length

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LENGTHS = {granularity: granularity.length for granularity in Granularity}


def window_of(moment: datetime, granularity: Granularity) -> Window:
    if moment.tzinfo is None:  # naive = local time, as datetime.astimezone reads it
        moment = moment.astimezone(timezone.utc)
    # UTC hours and days are whole multiples of their length since the epoch (exact integer
    # timedelta arithmetic; no leap seconds in POSIX time).
    length = _LENGTHS[granularity]
    return Window(granularity, _EPOCH + ((moment - _EPOCH) // length) * length)


def windows_of(
    moment: datetime, granularities: Iterable[Granularity] = ALL_GRANULARITIES
) -> list[Window]:
    return [window_of(moment, granularity) for granularity in granularities]


def windows_covering(
    moments: Iterable[datetime], granularities: Iterable[Granularity] = ALL_GRANULARITIES
) -> set[Window]:
    """The set of windows of all `moments` (aware datetimes): `windows_of` for a batch."""
    moments = list(moments)
    windows: set[Window] = set()
    for granularity in granularities:
        length = _LENGTHS[granularity]
        indices = {(moment - _EPOCH) // length for moment in moments}
        windows.update(Window(granularity, _EPOCH + index * length) for index in indices)
    return windows


class Arrival(StrEnum):
    ON_TIME = "on_time"
    LATE_ACCEPTED = "late_accepted"
    TOO_LATE = "too_late"
    DUPLICATE = "duplicate"


ACCEPTED_ARRIVALS = frozenset({Arrival.ON_TIME, Arrival.LATE_ACCEPTED})


@dataclass(frozen=True)
class LatenessPolicy:
    allowed_lateness: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if self.allowed_lateness < timedelta(0):
            raise ValueError("allowed_lateness must not be negative")


@dataclass(frozen=True)
class WatermarkState:
    """The greatest applied event time per topic-partition; what must be persisted."""

    frontiers: Mapping[PartitionKey, datetime] = field(default_factory=dict)

    def frontier(self, partition: PartitionKey) -> datetime | None:
        return self.frontiers.get(partition)

    def watermark(self, partition: PartitionKey, policy: LatenessPolicy) -> datetime | None:
        frontier = self.frontier(partition)
        return None if frontier is None else frontier - policy.allowed_lateness


@dataclass(frozen=True)
class ClassifiedEvent:
    event: FeedbackEvent
    arrival: Arrival
    watermark: datetime | None  # the partition's watermark just before this event

    @property
    def accepted(self) -> bool:
        return self.arrival in ACCEPTED_ARRIVALS


@dataclass(frozen=True)
class BatchOutcome:
    classified: tuple[ClassifiedEvent, ...]
    state: WatermarkState  # after the batch

    @property
    def accepted(self) -> list[FeedbackEvent]:
        return [item.event for item in self.classified if item.accepted]

    def events(self, arrival: Arrival) -> list[FeedbackEvent]:
        return [item.event for item in self.classified if item.arrival is arrival]

    def counts(self) -> dict[Arrival, int]:
        tally = Counter(item.arrival for item in self.classified)
        return {arrival: tally.get(arrival, 0) for arrival in Arrival}

    def touched_windows(
        self, granularities: Iterable[Granularity] = ALL_GRANULARITIES
    ) -> set[Window]:
        """The windows whose KPIs this batch changes: those of its accepted events."""
        kinds = tuple(granularities)
        return {window for event in self.accepted for window in windows_of(event.ts, kinds)}

    def too_late_by_window(
        self, granularities: Iterable[Granularity] = ALL_GRANULARITIES
    ) -> dict[Window, int]:
        kinds = tuple(granularities)
        return dict(
            Counter(
                w for event in self.events(Arrival.TOO_LATE) for w in windows_of(event.ts, kinds)
            )
        )


def classify_batch(
    events: Iterable[FeedbackEvent],
    state: WatermarkState,
    policy: LatenessPolicy,
    applied_turns: Collection[TurnKey] = frozenset(),
) -> BatchOutcome:
    """Decide, in offset order, what happens to each event of a batch.

    `applied_turns` holds the turn keys already applied before this batch (in production, a
    lookup of the batch's keys in the stored facts).
    """
    frontiers = dict(state.frontiers)
    applied_in_batch: set[TurnKey] = set()
    classified = []
    for event in sorted(events, key=lambda e: (e.topic, e.partition, e.offset)):
        partition = (event.topic, event.partition)
        frontier = frontiers.get(partition)
        watermark = None if frontier is None else frontier - policy.allowed_lateness
        if event.turn_key in applied_turns or event.turn_key in applied_in_batch:
            arrival = Arrival.DUPLICATE
        else:
            arrival = _arrival(event.ts, frontier, watermark)
        if arrival in ACCEPTED_ARRIVALS:
            applied_in_batch.add(event.turn_key)
            frontiers[partition] = event.ts if frontier is None else max(frontier, event.ts)
        classified.append(ClassifiedEvent(event, arrival, watermark))
    return BatchOutcome(tuple(classified), WatermarkState(frontiers))


def _arrival(moment: datetime, frontier: datetime | None, watermark: datetime | None) -> Arrival:
    if frontier is None or watermark is None:
        return Arrival.ON_TIME
    if moment < watermark:
        return Arrival.TOO_LATE
    hour = _LENGTHS[Granularity.HOUR]
    if (moment - _EPOCH) // hour < (frontier - _EPOCH) // hour:  # an older hourly window
        return Arrival.LATE_ACCEPTED
    return Arrival.ON_TIME
