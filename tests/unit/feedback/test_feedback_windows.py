from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from rag_assets.feedback.windows import (
    Arrival,
    Granularity,
    LatenessPolicy,
    WatermarkState,
    Window,
    classify_batch,
    window_of,
    windows_of,
)

UTC = timezone.utc
POLICY = LatenessPolicy(allowed_lateness=timedelta(hours=2))


def at(hour: int, minute: int = 0, day: int = 15) -> datetime:
    return datetime(2024, 3, day, hour, minute, tzinfo=UTC)


def test_windows_are_utc_aligned_hours_and_days():
    moment = datetime(
        2024, 3, 15, 0, 30, tzinfo=timezone(timedelta(hours=2))
    )  # 22:30 UTC on the 14th

    hour, day = windows_of(moment)

    assert hour == Window(Granularity.HOUR, at(22, day=14)) and hour.end == at(23, day=14)
    assert day == Window(Granularity.DAY, datetime(2024, 3, 14, tzinfo=UTC)) and day.end == at(0)
    assert hour.contains(moment) and not hour.contains(hour.end)


def test_window_boundaries_are_half_open():
    assert window_of(at(11), Granularity.HOUR).start == at(11)
    assert window_of(at(10, 59) + timedelta(seconds=59.999), Granularity.HOUR).start == at(10)


def test_negative_lateness_is_refused():
    with pytest.raises(ValueError):
        LatenessPolicy(allowed_lateness=timedelta(minutes=-1))


def test_arrivals_in_one_partition(make_event):
    events = [
        make_event(turn_id="a", offset=0, ts=at(10, 5)),
        make_event(turn_id="b", offset=1, ts=at(12, 30)),  # frontier 12:30, watermark 10:30
        make_event(turn_id="c", offset=2, ts=at(12, 1)),  # same hour as the frontier
        make_event(turn_id="d", offset=3, ts=at(11, 0)),  # older hour, above the watermark
        make_event(turn_id="e", offset=4, ts=at(10, 30)),  # exactly at the watermark
        make_event(turn_id="f", offset=5, ts=at(10, 29)),  # below the watermark
        make_event(turn_id="b", offset=6, ts=at(12, 30)),  # redelivery
    ]

    outcome = classify_batch(events, WatermarkState(), POLICY)

    assert [item.arrival for item in outcome.classified] == [
        Arrival.ON_TIME,
        Arrival.ON_TIME,
        Arrival.ON_TIME,
        Arrival.LATE_ACCEPTED,
        Arrival.LATE_ACCEPTED,
        Arrival.TOO_LATE,
        Arrival.DUPLICATE,
    ]
    assert outcome.classified[5].watermark == at(10, 30)
    assert outcome.state.frontier(("app.feedback", 0)) == at(12, 30)
    assert outcome.counts() == {
        Arrival.ON_TIME: 3,
        Arrival.LATE_ACCEPTED: 2,
        Arrival.TOO_LATE: 1,
        Arrival.DUPLICATE: 1,
    }


def test_events_are_taken_in_offset_order_whatever_the_input_order(make_event):
    events = [
        make_event(turn_id="late", offset=1, ts=at(7)),
        make_event(turn_id="new", offset=0, ts=at(12)),
    ]
    outcome = classify_batch(events, WatermarkState(), POLICY)
    assert [(item.event.turn_id, item.arrival) for item in outcome.classified] == [
        ("new", Arrival.ON_TIME),
        ("late", Arrival.TOO_LATE),
    ]


def test_too_late_events_are_counted_per_window_and_not_accepted(make_event):
    state = WatermarkState({("app.feedback", 0): at(20)})
    events = [make_event(turn_id=str(i), offset=i, ts=at(9, i)) for i in range(3)]

    outcome = classify_batch(events, state, POLICY)

    assert outcome.accepted == []
    assert outcome.touched_windows() == set()
    assert outcome.too_late_by_window() == {
        Window(Granularity.HOUR, at(9)): 3,
        Window(Granularity.DAY, at(0)): 3,
    }


def test_watermark_is_per_partition(make_event):
    state = WatermarkState({("app.feedback", 0): at(20)})
    event = make_event(partition=1, offset=0, ts=at(9))

    outcome = classify_batch([event], state, POLICY)

    assert outcome.classified[0].arrival is Arrival.ON_TIME
    assert outcome.state.frontiers == {
        ("app.feedback", 0): at(20),
        ("app.feedback", 1): at(9),
    }


def test_turns_applied_before_the_batch_are_duplicates(make_event):
    outcome = classify_batch(
        [make_event(conversation_id="c", turn_id="1")],
        WatermarkState(),
        POLICY,
        {("c", "1")},
    )
    assert outcome.classified[0].arrival is Arrival.DUPLICATE
    assert outcome.state == WatermarkState()


def test_touched_windows_are_those_of_accepted_events(make_event):
    events = [
        make_event(turn_id="a", offset=0, ts=at(23, 50, day=14)),
        make_event(turn_id="b", offset=1, ts=at(0, 10)),
        make_event(turn_id="a", offset=2, ts=at(5)),  # duplicate: touches nothing
    ]
    outcome = classify_batch(events, WatermarkState(), POLICY)

    assert outcome.touched_windows() == {
        Window(Granularity.HOUR, at(23, day=14)),
        Window(Granularity.HOUR, at(0)),
        Window(Granularity.DAY, at(0, day=14)),
        Window(Granularity.DAY, at(0)),
    }
    assert outcome.touched_windows([Granularity.DAY]) == {
        Window(Granularity.DAY, at(0, day=14)),
        Window(Granularity.DAY, at(0)),
    }


def test_a_retried_batch_gives_the_same_outcome(make_event):
    state = WatermarkState({("app.feedback", 0): at(11)})
    events = [make_event(turn_id=str(i), offset=i, ts=at(8 + i % 5, i)) for i in range(10)]

    first = classify_batch(events, state, POLICY)
    retry = classify_batch(list(reversed(events)), state, POLICY)

    assert first == retry
    assert state.frontiers == {("app.feedback", 0): at(11)}  # the input state is not mutated


def test_window_arithmetic_equals_calendar_truncation():
    import random
    from datetime import datetime, timedelta, timezone

    from rag_assets.feedback.windows import Granularity, Window, window_of, windows_covering

    rng = random.Random(9)
    zones = [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    base = datetime(2000, 1, 1, tzinfo=timezone.utc)
    moments = [(base + timedelta(seconds=rng.uniform(0, 100 * 365 * 86400))).astimezone(rng.choice(zones))
               for _ in range(2000)]
    moments += [datetime(2025, 1, 15, 23, 59, 59, 999999, tzinfo=timezone.utc),
                datetime(2025, 1, 16, tzinfo=timezone.utc), datetime(2024, 2, 29, 12, tzinfo=zones[1])]
    for moment in moments:
        utc = moment.astimezone(timezone.utc)
        hour = Window(Granularity.HOUR, utc.replace(minute=0, second=0, microsecond=0))
        day = Window(Granularity.DAY, utc.replace(hour=0, minute=0, second=0, microsecond=0))
        assert window_of(moment, Granularity.HOUR) == hour
        assert window_of(moment, Granularity.DAY) == day
    assert windows_covering(moments) == {w for m in moments for g in Granularity
                                         for w in [window_of(m, g)]}
