from __future__ import annotations

import io
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rag_assets.feedback.lake_layout import (
    LAKE_SCHEMA,
    LakeObject,
    dedupe_turns,
    empty_frame,
    events_to_frames,
    frame_to_events,
    frame_to_parquet,
    parquet_to_frame,
    parse_object_key,
    range_objects,
)

UTC = timezone.utc


def test_object_key_is_deterministic_and_sortable():
    key = LakeObject(date(2024, 3, 15), "app.feedback", 2, 1200, 1350).key
    assert key == (
        "conversations/date=2024-03-15/app.feedback-2-00000000000000001200-00000000000000001350.parquet"
    )
    assert LakeObject(date(2024, 3, 15), "app.feedback", 2, 1200, 1350).key == key
    later = LakeObject(date(2024, 3, 15), "app.feedback", 2, 10000, 10100).key
    assert sorted([later, key]) == [key, later]


def test_object_key_round_trips_even_with_dashes_in_the_topic():
    lake_object = LakeObject(date(2024, 3, 15), "app-feedback.v2", 11, 0, 42)
    assert parse_object_key(lake_object.key) == lake_object
    assert parse_object_key("conversations/date=2024-03-15/notes.txt") is None
    assert parse_object_key("finetune/ft-1/train.jsonl") is None


def test_a_range_is_split_by_utc_event_date(make_event):
    events = [
        make_event(turn_id="a", offset=100, ts=datetime(2024, 3, 14, 23, 59, tzinfo=UTC)),
        make_event(turn_id="b", offset=101, ts=datetime(2024, 3, 15, 0, 0, tzinfo=UTC)),
        make_event(turn_id="c", offset=102, ts=datetime(2024, 3, 14, 8, 0, tzinfo=UTC)),  # late
    ]

    objects = range_objects(events, "app.feedback", 0, 100, 103)

    name = "app.feedback-0-00000000000000000100-00000000000000000103.parquet"
    assert {key: list(frame["turn_id"]) for key, frame in objects.items()} == {
        f"conversations/date=2024-03-14/{name}": ["a", "c"],
        f"conversations/date=2024-03-15/{name}": ["b"],
    }


def test_a_retried_range_produces_identical_objects(make_event):
    events = [
        make_event(turn_id=str(i), offset=i, ts=datetime(2024, 3, 15, i, tzinfo=UTC))
        for i in range(5)
    ]

    first = range_objects(events, "app.feedback", 0, 0, 5)
    retry = range_objects(list(reversed(events)), "app.feedback", 0, 0, 5)

    assert first.keys() == retry.keys()
    for key in first:
        assert first[key].equals(retry[key])


def test_events_outside_the_range_are_refused(make_event):
    with pytest.raises(ValueError):
        range_objects([make_event(offset=10)], "app.feedback", 0, 0, 10)
    with pytest.raises(ValueError):
        range_objects([make_event(partition=1, offset=3)], "app.feedback", 0, 0, 10)


def test_frames_have_the_fixed_schema_even_with_nulls(make_event):
    events = [
        make_event(
            turn_id="a",
            offset=0,
            rating_up=None,
            rating_score=None,
            comment=None,
            customer_ref=None,
            retrieved_ids=(),
        ),
        make_event(turn_id="b", offset=1, rating_up=True, rating_score=4.5, comment="thanks"),
    ]

    (frame,) = events_to_frames(events).values()
    data = frame_to_parquet(frame)

    assert list(frame.columns) == LAKE_SCHEMA.names
    assert pq.read_schema(io.BytesIO(data)).remove_metadata().equals(LAKE_SCHEMA)
    assert frame["rating_up"].isna().tolist() == [True, False]
    assert frame["retrieved_ids"].tolist()[0] == []


def test_parquet_round_trip_gives_back_the_events(make_event):
    events = [
        make_event(
            turn_id="a",
            offset=7,
            ts=datetime(2024, 3, 15, 10, 0, 0, 123456, tzinfo=UTC),
            comment="ok 👍",
        ),
        make_event(
            turn_id="b",
            offset=8,
            rating_up=False,
            rating_score=1.0,
            retrieved_ids=("x", "y"),
        ),
    ]
    (frame,) = events_to_frames(events).values()

    assert frame_to_events(parquet_to_frame(frame_to_parquet(frame))) == events


def test_reading_back_keeps_the_first_delivery_of_each_turn(make_event):
    first_try = range_objects(
        [
            make_event(conversation_id="c1", turn_id="1", offset=0, answer="first"),
            make_event(conversation_id="c1", turn_id="2", offset=1),
        ],
        "app.feedback",
        0,
        0,
        2,
    )
    wider_retry = range_objects(
        [
            make_event(conversation_id="c1", turn_id="1", offset=0, answer="first"),
            make_event(conversation_id="c1", turn_id="2", offset=1),
            make_event(conversation_id="c1", turn_id="1", offset=2, answer="redelivered"),
            make_event(conversation_id="c2", turn_id="1", offset=3),
        ],
        "app.feedback",
        0,
        0,
        4,
    )
    stored = [
        parquet_to_frame(frame_to_parquet(f)) for f in [*wider_retry.values(), *first_try.values()]
    ]

    turns = dedupe_turns(stored)

    assert list(
        zip(turns["conversation_id"], turns["turn_id"], turns["kafka_offset"], strict=True)
    ) == [
        ("c1", "1", 0),
        ("c1", "2", 1),
        ("c2", "1", 3),
    ]
    assert turns["answer"].tolist()[0] == "first"


def test_dedupe_of_nothing_is_an_empty_frame_with_the_schema():
    frame = dedupe_turns([])
    assert len(frame) == 0 and list(frame.columns) == LAKE_SCHEMA.names
    assert (
        pa.Table.from_pandas(empty_frame(), schema=LAKE_SCHEMA, preserve_index=False).num_rows == 0
    )


def test_arrow_write_path_writes_what_the_frame_path_writes(make_event):
    from datetime import timedelta

    from rag_assets.feedback.lake_layout import range_tables, table_to_parquet

    zone = timezone(timedelta(hours=2))
    events = [
        make_event(turn_id="a", offset=7, ts=datetime(2024, 3, 14, 23, 59, tzinfo=UTC),
                   rating_up=True, comment="thanks ✓", retrieved_ids=("d1#0", "d2#1")),
        make_event(turn_id="b", offset=5, ts=datetime(2024, 3, 15, 1, 30, tzinfo=zone),
                   rating_score=3.0, rating_up=None, customer_ref=None, retrieved_ids=()),
        make_event(turn_id="c", offset=6, ts=datetime(2024, 3, 15, 9, 0, 0, 123456, tzinfo=UTC),
                   latency_ms=12.5, comment=None),
    ]
    tables = range_tables(list(reversed(events)), "app.feedback", 0, 5, 8)
    frames = range_objects(events, "app.feedback", 0, 5, 8)
    assert list(tables) == list(frames)
    for key, frame in frames.items():
        written = parquet_to_frame(table_to_parquet(tables[key]))
        assert written.equals(parquet_to_frame(frame_to_parquet(frame)))
        assert frame_to_events(written) == frame_to_events(frame)
    with pytest.raises(ValueError):
        range_tables([make_event(offset=10)], "app.feedback", 0, 0, 10)
