"""The CDC guard of erased records: the events it drops keep their place in the outcomes."""

from rag_assets.customers.erased_records import with_erased_outcomes
from rag_assets.customers.source_state import Outcome


def test_events_of_erased_records_keep_their_place_in_the_outcomes(make_change):
    events = [make_change("1"), make_change("2"), make_change("3")]
    applied = [(events[0], "applied"), (events[2], "stale")]
    merged = with_erased_outcomes(events, applied)
    assert [o for _, o in merged] == ["applied", Outcome.ERASED, "stale"]
    assert [e for e, _ in merged] == events and Outcome.ERASED.value == "erased"
