"""When a CDC worker in a consumer group leaves the derived queues to the end of the group's
catch-up (`GroupCatchUp`, pure)."""

from hypothesis import given
from hypothesis import strategies as st

from rag_assets.customers.streaming import GroupCatchUp

POLL = 2000


def test_a_shrinking_backlog_is_waited_for_until_it_is_less_than_a_poll():
    group = GroupCatchUp(POLL)

    assert [group.waiting(lag) for lag in (60_000, 41_000, 12_000, 2_500, 1_999)] == \
        [True, True, True, True, False]


def test_a_backlog_that_stops_shrinking_is_not_waited_for():
    group = GroupCatchUp(POLL)

    assert [group.waiting(lag) for lag in (30_000, 20_000, 20_000)] == [True, True, False]


def test_after_giving_up_a_new_backlog_is_waited_for_again():
    group = GroupCatchUp(POLL)
    seen = [group.waiting(lag) for lag in (9_000, 9_500, 1_000, 50_000, 40_000)]

    assert seen == [True, False, False, True, True]


@given(st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=50))
def test_it_waits_only_for_a_lag_of_a_poll_or_more_that_shrank_since_the_last_look(lags):
    group = GroupCatchUp(POLL)
    previous_wait = None  # the lag seen at the last look that was waited for
    for lag in lags:
        waited = group.waiting(lag)
        if waited:
            assert lag >= POLL and (previous_wait is None or lag < previous_wait)
        else:
            assert lag < POLL or (previous_wait is not None and lag >= previous_wait)
        previous_wait = lag if waited else None
