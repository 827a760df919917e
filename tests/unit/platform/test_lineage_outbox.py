"""Folding a tick's micro-batch records into one materialisation per asset (pure)."""

from datetime import UTC, datetime, timedelta

from rag_assets.platform.kafka_stream import lag_from
from hypothesis import given
from hypothesis import strategies as st

from rag_assets.platform.lineage_outbox import CAUGHT_UP_KEY, MAX_LISTED, OutboxRow, fold

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(i: int, asset: str, **metadata) -> OutboxRow:
    return OutboxRow(i, asset, metadata, T0 + timedelta(seconds=i))


def rng(partition: int, start: int, end: int) -> dict:
    return {"topic": "cdc.crm.customers", "partition": partition, "start": start, "end": end}


def test_counts_add_up_and_ranges_coalesce_per_partition():
    folded = fold([
        row(1, "source_records", events_read=3, seconds_parse=0.5, offset_ranges=[rng(0, 0, 3)]),
        row(2, "source_records", events_read=4, seconds_parse=0.25,
            offset_ranges=[rng(0, 3, 5), rng(1, 10, 12)]),
        row(3, "identity_graph", records_linked=2),
    ])
    records = folded["source_records"].metadata()
    assert records["events_read"] == 7
    assert records["seconds_parse"] == 0.75
    assert records["micro_batches"] == 2
    assert records["offset_ranges"] == [rng(0, 0, 5), rng(1, 10, 12)]
    assert records["first_applied_at"] == (T0 + timedelta(seconds=1)).isoformat()
    assert records["last_applied_at"] == (T0 + timedelta(seconds=2)).isoformat()
    assert folded["identity_graph"].metadata()["records_linked"] == 2


def test_states_means_and_flags_keep_the_latest_value():
    folded = fold([
        row(1, "document_chunks", table_version=7, mean_comment_sentiment=0.5, mode="stream"),
        row(2, "document_chunks", table_version=9, mean_comment_sentiment=-0.1, mode="stream"),
    ])["document_chunks"].metadata()
    assert folded["table_version"] == 9
    assert folded["mean_comment_sentiment"] == -0.1


def test_long_lists_are_cut_and_the_rest_counted():
    docs = [{"doc_key": f"k{i}"} for i in range(MAX_LISTED + 5)]
    folded = fold([row(1, "document_chunks", documents=docs[:50]),
                   row(2, "document_chunks", documents=docs[50:])])["document_chunks"].metadata()
    assert folded["documents"] == docs[:MAX_LISTED]
    assert folded["documents_not_listed"] == 5


def test_a_caught_up_check_is_no_micro_batch_but_marks_the_asset_current():
    folded = fold([row(1, "source_records", events_read=3), row(2, "identity_graph", caught_up=True)])
    graph = folded["identity_graph"].metadata()
    assert graph["micro_batches"] == 0 and graph[CAUGHT_UP_KEY] is True
    assert folded["source_records"].metadata()[CAUGHT_UP_KEY] is False
    changed = fold([row(1, "identity_graph", caught_up=True),
                    row(2, "identity_graph", records_linked=4)])["identity_graph"].metadata()
    assert changed["micro_batches"] == 1 and changed["records_linked"] == 4


@given(st.lists(st.sampled_from(["source_records", "identity_graph", "customer_profiles"]),
                min_size=1, max_size=30))
def test_assets_come_in_the_order_of_their_last_row(assets):
    # Dagster shows an asset behind when its upstream was materialised after it: an asset
    # brought up to date after its upstream must be reported after it.
    rows = [row(i, asset) for i, asset in enumerate(assets, start=1)]
    last = {asset: i for i, asset in enumerate(assets, start=1)}
    assert list(fold(list(reversed(rows)))) == sorted(last, key=last.__getitem__)


def test_lag_counts_records_after_each_position_and_not_before_retention():
    bounds = {("t", 0): (0, 100), ("t", 1): (50, 60), ("t", 2): (0, 0)}
    lag = lag_from(bounds, {("t", 0): 90, ("t", 1): 10})
    assert (lag.events, lag.partitions_behind, lag.partitions) == (20, 2, 3)
