"""`changes_between`: which logged writes a store's snapshot must forget, and when it must
forget everything because the log does not account for every write since its stamp."""

from hypothesis import given
from hypothesis import strategies as st

from rag_assets.customers.identity_store import GraphChanges, LoggedChange, changes_between


def _row(before: int, after: int, key: str) -> LoggedChange:
    return LoggedChange(before, after, GraphChanges({key}, {f"cus_{key}"}, {("email", key)}))


def test_a_chained_log_gives_the_union_of_its_writes():
    log = [_row(3, 7, "a"), _row(7, 12, "b")]
    assert changes_between(log, 3, 12) == GraphChanges(
        {"a", "b"}, {"cus_a", "cus_b"}, {("email", "a"), ("email", "b")})


def test_no_write_since_the_stamp_changes_nothing():
    assert changes_between([], 5, 5) == GraphChanges()


def test_a_write_missing_from_the_log_means_everything():
    # 7 -> 9 was written outside the log (an erasure, a rebuild, a pruned row).
    assert changes_between([_row(3, 7, "a"), _row(9, 12, "b")], 3, 12) is None


def test_a_log_short_of_the_current_stamp_means_everything():
    assert changes_between([_row(3, 7, "a")], 3, 12) is None


def test_a_snapshot_stamp_no_write_started_from_means_everything():
    # A store's own write rolled back: its stamp was never committed, nobody chains from it.
    assert changes_between([_row(3, 7, "a")], 5, 7) is None
    assert changes_between([], 8, 7) is None


def test_a_write_too_large_to_list_means_everything():
    assert changes_between([_row(3, 7, "a"), LoggedChange(7, 9, None)], 3, 9) is None


@st.composite
def _histories(draw):
    """Stamps of a run of writes, which of them were logged, and a snapshot's stamp among them."""
    steps = draw(st.lists(st.integers(1, 5), min_size=0, max_size=12))
    stamps = [0]
    for step in steps:
        stamps.append(stamps[-1] + step)
    logged = draw(st.lists(st.booleans(), min_size=len(steps), max_size=len(steps)))
    start = draw(st.integers(0, len(steps)))
    return stamps, logged, start


@given(_histories())
def test_the_changes_are_given_exactly_when_every_write_since_the_stamp_was_logged(history):
    stamps, logged, start = history
    writes = [(stamps[i], stamps[i + 1], f"k{i}") for i in range(len(stamps) - 1)]
    log = [_row(before, after, key) for (before, after, key), kept in zip(writes, logged)
           if kept and after > stamps[start]]
    result = changes_between(log, stamps[start], stamps[-1])
    since = range(start, len(writes))
    if all(logged[i] for i in since):
        assert result is not None
        assert result.record_keys == {writes[i][2] for i in since}
    else:
        assert result is None
