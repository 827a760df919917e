"""When a CDC worker in a consumer group leaves the derived queues to the end of the group's
catch-up (`GroupCatchUp`, pure)."""

from hypothesis import given
from hypothesis import strategies as st

from rag_assets.customers.streaming import GROUP_STALL_S, GroupCatchUp
from rag_assets.platform.kafka_stream import GROUP_SESSION_TIMEOUT_MS

POLL = 2000
PATIENCE = 20.0


def looks(group: GroupCatchUp, lags: list[int], every_s: float = 2.0) -> list[bool]:
    return [group.waiting(lag, i * every_s) for i, lag in enumerate(lags)]


def test_a_shrinking_backlog_is_waited_for_until_it_is_less_than_a_poll():
    assert looks(GroupCatchUp(POLL, PATIENCE), [60_000, 41_000, 12_000, 2_500, 1_999]) == \
        [True, True, True, True, False]


def test_a_rebalance_gap_shorter_than_the_patience_does_not_end_the_wait():
    # A dead member's partitions stand still for 16 s, then a survivor applies them.
    lags = [30_000, 20_000] + [20_000] * 8 + [14_000, 6_000, 1_000]

    assert looks(GroupCatchUp(POLL, PATIENCE), lags) == [True] * 12 + [False]


def test_a_lag_that_reaches_no_new_low_for_the_patience_ends_the_wait():
    # 20 s without a new low (the 11th look) is a stalled member, not a rebalance.
    lags = [30_000, 20_000] + [20_500, 20_000] * 6

    assert looks(GroupCatchUp(POLL, PATIENCE), lags) == [True] * 11 + [False, False, False]


def test_after_giving_up_the_next_wait_starts_once_the_source_caught_up():
    group = GroupCatchUp(POLL, PATIENCE)
    seen = looks(group, [9_000, 9_500, 9_000, 8_000, 1_000, 50_000, 40_000], every_s=25.0)

    assert seen == [True, False, False, False, False, True, True]


def test_the_patience_is_the_group_protocol_s_time_to_move_a_dead_member_s_partitions():
    assert GROUP_STALL_S == 2 * GROUP_SESSION_TIMEOUT_MS / 1000


looks_strategy = st.lists(
    st.tuples(st.integers(min_value=0, max_value=10**6), st.floats(min_value=0.1, max_value=30)),
    min_size=1, max_size=60)


@given(looks_strategy)
def test_waits_only_for_a_backlog_and_never_longer_than_the_patience_past_its_last_low(seq):
    group = GroupCatchUp(POLL, PATIENCE)
    now, low, low_at, gave_up = 0.0, None, 0.0, False
    for lag, step in seq:
        now += step
        waited = group.waiting(lag, now)
        if lag < POLL:
            assert not waited
            low, gave_up = None, False
            continue
        if gave_up:
            assert not waited, "a wait restarted before the source caught up"
            continue
        if low is None or lag < low:
            assert waited, "a catch-up that reached a new low was not waited for"
            low, low_at = lag, now
        else:
            assert waited == (now - low_at < PATIENCE)
            if not waited:
                low, gave_up = None, True
