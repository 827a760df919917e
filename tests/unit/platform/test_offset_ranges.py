import random

from rag_assets.platform.offset_ranges import coalesce, contains, high_water_mark, uncovered


def test_coalesce_merges_overlapping_and_touching_ranges():
    assert coalesce([(5, 8), (0, 3), (3, 5), (10, 12), (11, 11)]) == [(0, 8), (10, 12)]


def test_uncovered_returns_only_the_new_parts():
    applied = [(0, 10), (20, 30)]
    assert uncovered((5, 25), applied) == [(10, 20)]
    assert uncovered((0, 10), applied) == []
    assert uncovered((30, 40), applied) == [(30, 40)]
    assert uncovered((-5, 35), applied) == [(-5, 0), (10, 20), (30, 35)]


def test_high_water_mark_stops_at_the_first_gap():
    assert high_water_mark([(0, 10), (12, 20)]) == 10
    assert high_water_mark([(0, 10), (10, 20)]) == 20
    assert high_water_mark([(5, 10)], floor=0) == 0
    assert high_water_mark([(5, 10)], floor=5) == 10


def test_claiming_ranges_in_any_order_and_with_repeats_covers_each_offset_once():
    rng = random.Random(3)
    for _ in range(200):
        ranges = []
        for _ in range(rng.randint(1, 12)):
            start = rng.randint(0, 90)
            ranges.append((start, start + rng.randint(0, 15)))
        applied: list[tuple[int, int]] = []
        seen: list[int] = []
        for wanted in ranges:
            for start, end in uncovered(wanted, applied):
                seen.extend(range(start, end))
            applied = coalesce(applied + [wanted])
        expected = sorted({o for s, e in ranges for o in range(s, e)})
        assert sorted(seen) == expected
        assert all(contains(applied, o) for o in expected)
