"""Layout of the conversation lake: object names, the Parquet schema, and reading back.

A run applies one offset range `[start, end)` of one topic-partition. Its events are split by
the UTC date of their event time, and each date's rows go to

    conversations/date=YYYY-MM-DD/<topic>-<partition>-<start>-<end>.parquet

with the offsets zero-padded to 20 digits so a listing sorts in offset order. The name is a
function of the range and the date only, so a retried run writes the same objects again
(overwriting, not adding), and a retry writes the same set of dates because it re-reads the
same events. Every parsed event of the range lands, including late and duplicate ones: the lake
is the record of what arrived, not of what the KPIs accepted.

Reading back, overlapping objects (a range re-requested with different bounds) and
redeliveries can repeat a turn; `dedupe_turns` keeps, per (conversation_id, turn_id), the row
with the lowest (topic, partition, offset) — the first delivery.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rag_assets.feedback.events import FeedbackEvent

LAKE_PREFIX = "conversations"
OFFSET_DIGITS = 20

LAKE_SCHEMA = pa.schema(
    [
        pa.field("conversation_id", pa.string(), nullable=False),
        pa.field("turn_id", pa.string(), nullable=False),
        pa.field("customer_ref", pa.string()),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("question", pa.string(), nullable=False),
        pa.field("answer", pa.string(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("latency_ms", pa.float64(), nullable=False),
        pa.field("retrieved_ids", pa.list_(pa.string()), nullable=False),
        pa.field("rating_up", pa.bool_()),
        pa.field("rating_score", pa.float64()),
        pa.field("comment", pa.string()),
        pa.field("kafka_topic", pa.string(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
    ]
)

_POSITION = ["kafka_topic", "kafka_partition", "kafka_offset"]
_TURN_KEY = ["conversation_id", "turn_id"]
_OBJECT_KEY = re.compile(
    rf"^{LAKE_PREFIX}/date=(?P<date>\d{{4}}-\d{{2}}-\d{{2}})/"
    r"(?P<topic>[A-Za-z0-9._-]+)-(?P<partition>\d+)-(?P<start>\d+)-(?P<end>\d+)\.parquet$"
)


@dataclass(frozen=True)
class LakeObject:
    """One Parquet object: the rows of one date from one offset range [start, end)."""

    event_date: date
    topic: str
    partition: int
    start_offset: int
    end_offset: int

    @property
    def key(self) -> str:
        return (
            f"{LAKE_PREFIX}/date={self.event_date.isoformat()}/{self.topic}-{self.partition}-"
            f"{self.start_offset:0{OFFSET_DIGITS}d}-{self.end_offset:0{OFFSET_DIGITS}d}.parquet"
        )


def parse_object_key(key: str) -> LakeObject | None:
    """The `LakeObject` a key names, or None for a key that is not a conversation object."""
    match = _OBJECT_KEY.match(key)
    if match is None:
        return None
    return LakeObject(
        event_date=date.fromisoformat(match["date"]),
        topic=match["topic"],
        partition=int(match["partition"]),
        start_offset=int(match["start"]),
        end_offset=int(match["end"]),
    )


def events_to_frames(events: Iterable[FeedbackEvent]) -> dict[date, pd.DataFrame]:
    """Rows per UTC event date, in offset order, with exactly the columns of `LAKE_SCHEMA`."""
    by_date: dict[date, list[FeedbackEvent]] = defaultdict(list)
    for event in events:
        by_date[event.ts.astimezone(timezone.utc).date()].append(event)
    return {
        day: _frame(
            [_row(e) for e in sorted(day_events, key=lambda e: (e.topic, e.partition, e.offset))]
        )
        for day, day_events in sorted(by_date.items())
    }


def range_objects(
    events: Iterable[FeedbackEvent],
    topic: str,
    partition: int,
    start_offset: int,
    end_offset: int,
) -> dict[str, pd.DataFrame]:
    """The objects (key → rows) a run over `[start_offset, end_offset)` writes."""
    events = list(events)
    for event in events:
        if (event.topic, event.partition) != (
            topic,
            partition,
        ) or not start_offset <= event.offset < end_offset:
            raise ValueError(
                f"event at {event.topic}/{event.partition}@{event.offset} is outside "
                f"{topic}/{partition} [{start_offset}, {end_offset})"
            )
    return {
        LakeObject(day, topic, partition, start_offset, end_offset).key: frame
        for day, frame in events_to_frames(events).items()
    }


def range_tables(
    events: Iterable[FeedbackEvent],
    topic: str,
    partition: int,
    start_offset: int,
    end_offset: int,
) -> dict[str, pa.Table]:
    """`range_objects` as Arrow tables, built column by column (no pandas on the write path).

    Same keys and the same rows in the same order, so the Parquet bytes hold the same data.
    """
    by_date: dict[date, list[FeedbackEvent]] = defaultdict(list)
    for event in events:
        if (event.topic, event.partition) != (topic, partition) or not (
            start_offset <= event.offset < end_offset
        ):
            raise ValueError(
                f"event at {event.topic}/{event.partition}@{event.offset} is outside "
                f"{topic}/{partition} [{start_offset}, {end_offset})"
            )
        by_date[event.ts.astimezone(timezone.utc).date()].append(event)
    tables = {}
    for day, day_events in sorted(by_date.items()):
        day_events.sort(key=lambda e: e.offset)
        columns = {
            "conversation_id": [e.conversation_id for e in day_events],
            "turn_id": [e.turn_id for e in day_events],
            "customer_ref": [e.customer_ref for e in day_events],
            "ts": [e.ts for e in day_events],
            "question": [e.question for e in day_events],
            "answer": [e.answer for e in day_events],
            "model_id": [e.model_id for e in day_events],
            "latency_ms": [e.latency_ms for e in day_events],
            "retrieved_ids": [list(e.retrieved_ids) for e in day_events],
            "rating_up": [e.rating_up for e in day_events],
            "rating_score": [e.rating_score for e in day_events],
            "comment": [e.comment for e in day_events],
            "kafka_topic": [e.topic for e in day_events],
            "kafka_partition": [e.partition for e in day_events],
            "kafka_offset": [e.offset for e in day_events],
        }
        key = LakeObject(day, topic, partition, start_offset, end_offset).key
        tables[key] = pa.Table.from_pydict(columns, schema=LAKE_SCHEMA)
    return tables


def table_to_parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def frame_to_parquet(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, schema=LAKE_SCHEMA, preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def parquet_to_frame(data: bytes) -> pd.DataFrame:
    table = pq.read_table(io.BytesIO(data), schema=LAKE_SCHEMA)
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def empty_frame() -> pd.DataFrame:
    return _frame([])


def dedupe_turns(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """All rows of `frames`, one per turn key: the first delivery by (topic, partition, offset)."""
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return empty_frame()
    combined = pd.concat(frames, ignore_index=True).sort_values(_POSITION, kind="stable")
    return combined.drop_duplicates(subset=_TURN_KEY, keep="first").reset_index(drop=True)


def frame_to_events(frame: pd.DataFrame) -> list[FeedbackEvent]:
    return [
        _event(row)
        for row in pa.Table.from_pandas(frame, schema=LAKE_SCHEMA, preserve_index=False).to_pylist()
    ]


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pa.Table.from_pylist(rows, schema=LAKE_SCHEMA).to_pandas(types_mapper=pd.ArrowDtype)


def _row(event: FeedbackEvent) -> dict:
    return {
        "conversation_id": event.conversation_id,
        "turn_id": event.turn_id,
        "customer_ref": event.customer_ref,
        "ts": event.ts,
        "question": event.question,
        "answer": event.answer,
        "model_id": event.model_id,
        "latency_ms": event.latency_ms,
        "retrieved_ids": list(event.retrieved_ids),
        "rating_up": event.rating_up,
        "rating_score": event.rating_score,
        "comment": event.comment,
        "kafka_topic": event.topic,
        "kafka_partition": event.partition,
        "kafka_offset": event.offset,
    }


def _event(row: dict) -> FeedbackEvent:
    moment: datetime = row["ts"]
    return FeedbackEvent(
        conversation_id=row["conversation_id"],
        turn_id=row["turn_id"],
        customer_ref=row["customer_ref"],
        ts=moment.astimezone(timezone.utc),
        question=row["question"],
        answer=row["answer"],
        model_id=row["model_id"],
        latency_ms=row["latency_ms"],
        retrieved_ids=tuple(row["retrieved_ids"]),
        rating_up=row["rating_up"],
        rating_score=row["rating_score"],
        comment=row["comment"],
        topic=row["kafka_topic"],
        partition=row["kafka_partition"],
        offset=row["kafka_offset"],
    )
