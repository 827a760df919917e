"""Bad CDC input through real Kafka and PostgreSQL: 24 kinds of unusable records each become one
dead letter (reason, topic, partition, offset), are counted in the asset metadata, and do not
stop the good events around them; `rag-assets dead-letters list/replay` shows them and applies
the ones a fixed parser accepts, exactly once."""

import json
from dataclasses import replace

import pytest

from rag_assets.customers import cdc_apply
from rag_assets.platform.dead_letters import pending_dead_letters
from tests.catalogues import AUDIT_LOG, demo_catalogue_with, use_catalogue
from tests.integration.customers.bad_events import (
    ALICE,
    CORPUS,
    LIMIT,
    TICKET,
    envelope,
    expected_positions,
    raw,
)
from tests.integration.customers.helpers import (
    customers_command,
    catch_up,
    debezium,
    dms,
    key_of,
    metadata,
    publish,
    stored_state,
)

pytestmark = pytest.mark.integration

def corpus_stream():
    """Good events before, between and after the bad ones."""
    good_before = [debezium("crm", "customers", "c", pk=1, after=ALICE, ts_ms=1_000, tx_id=1,
                            lsn=10, partition=0),
                   dms("support", "tickets", "insert", TICKET, ts="2025-01-10T09:00:00Z",
                       tx_id=1, partition=0)]
    good_after = [debezium("crm", "customers", "u", pk=1, after={**ALICE, "city": "York"},
                           ts_ms=2_000, tx_id=2, lsn=20, partition=0),
                  debezium("crm", "customers", "c", pk=2, after={**ALICE, "id": 2, "first_name": "Zed",
                                                                  "email": "zed@example.org",
                                                                  "national_id": None, "phone": None},
                           ts_ms=3_000, tx_id=3, lsn=30, partition=0)]
    bad = [message for message, _ in CORPUS.values()]
    middle = len(bad) // 2
    return good_before + bad[:middle] + [good_after[0]] + bad[middle:] + [good_after[1]]


def test_bad_events_become_dead_letters_and_the_good_ones_are_applied(kafka, postgres, monkeypatch,
                                                                     tmp_path):
    assert len(CORPUS) >= 15
    messages = corpus_stream()
    publish(kafka, messages, partitions=1, topic_configs={"max.message.bytes": str(4 * LIMIT)},
            max_request_size=4 * LIMIT)
    runs = catch_up(kafka, postgres)
    meta = {k: sum(metadata(r)[k] for r in runs) for k in ("events_read", "dead_letters", "events_applied")}
    assert meta == {"events_read": len(messages), "dead_letters": len(CORPUS), "events_applied": 4}

    state = stored_state(postgres)
    assert set(state.live_rows) == {"crm.customers:1", "crm.customers:2", "support.tickets:900001"}
    assert state.live_rows["crm.customers:1"]["city"] == "York"

    with postgres.transaction() as cur:
        letters = pending_dead_letters(cur, "cdc")
    assert len(letters) == len(CORPUS)
    positions = expected_positions(messages)
    by_position = {(d["topic"], d["offset"]): d for d in letters}
    for (name, (message, reason)), position in zip(
            CORPUS.items(), [positions[messages.index(m)] for m, _ in CORPUS.values()]):
        letter = by_position[position]
        assert reason in letter["reason"], name
        assert letter["partition"] == 0
        if name == "oversized":
            assert letter["payload"] is None  # not kept; the replay re-reads it from Kafka
        else:
            assert (None if letter["payload"] is None else bytes(letter["payload"])) == message.value

    # A redelivered run of the same ranges stores no second copy.
    with postgres.transaction() as cur:
        cur.execute("DELETE FROM applied_offsets")
    catch_up(kafka, postgres)
    with postgres.transaction() as cur:
        assert len(pending_dead_letters(cur, "cdc")) == len(CORPUS)

    # --- the CLI: list, then replay after the parser was "fixed" for two of the causes.
    code, out = customers_command(["dead-letters", "list", "--source", "cdc"], postgres)
    assert code == 0 and f"{len(CORPUS)} pending dead letter(s) of cdc" in out
    assert "not a known source table" in out
    code, out = customers_command(["dead-letters", "list", "--json"], postgres)
    listed = json.loads(out)
    assert {(d["topic"], d["partition"], d["offset"]) for d in listed} == {
        (d["topic"], d["partition"], d["offset"]) for d in letters}

    code, out = customers_command(["dead-letters", "replay"], postgres, kafka)  # no --source
    # is refused
    assert code == 2

    # The catalogue gains the audit log, and the size limit is raised.
    use_catalogue(monkeypatch, demo_catalogue_with(tmp_path, AUDIT_LOG))
    fixed = replace(cdc_apply.parser_config(), max_value_bytes=4 * LIMIT)
    monkeypatch.setattr(cdc_apply, "parser_config", lambda catalogue=None: fixed)
    code, out = customers_command(["dead-letters", "replay", "--source", "cdc", "--json"],
                                  postgres, kafka)
    report = json.loads(out)
    assert code == 1  # some letters still fail
    assert report["applied"] == 2 and report["outcomes"] == {"applied": 2}
    assert report["still_failing"] == len(CORPUS) - 2
    assert report["reread_from_kafka"] == len(CORPUS)
    assert report["records_linked"] >= 1 and report["profiles_written"] >= 1

    state = stored_state(postgres)
    assert {"crm.audit_log:7", "crm.customers:10"} <= set(state.live_rows)
    assert len(state.live_rows["crm.customers:10"]["notes"]) > LIMIT
    assert "crm.customers:10" in state.assignments  # linked and profiled like any record
    with postgres.transaction() as cur:
        cur.execute("SELECT reason, replay_result FROM dead_letters WHERE replayed_at IS NOT NULL")
        replayed = cur.fetchall()
        cur.execute("SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL"
                    " AND replay_result LIKE 'still failing: %%'")
        assert cur.fetchone()[0] == len(CORPUS) - 2
    assert sorted(result for _, result in replayed) == ["replayed: applied"] * 2

    # Replaying again applies nothing twice.
    code, out = customers_command(["dead-letters", "replay", "--source", "cdc", "--json"],
                                  postgres, kafka)
    assert json.loads(out)["applied"] == 0
    assert stored_state(postgres) == state


def test_replay_without_kafka_uses_the_stored_payload(kafka, postgres, monkeypatch, tmp_path):
    publish(kafka, [raw(envelope(after={"id": 7, "action": "login"}, table="audit_log"),
                        key=key_of(7), topic="cdc.crm.audit_log")], partitions=1)
    (run,) = catch_up(kafka, postgres)
    assert metadata(run)["dead_letters"] == 1
    use_catalogue(monkeypatch, demo_catalogue_with(tmp_path, AUDIT_LOG))
    code, out = customers_command(["dead-letters", "replay", "--source", "cdc"], postgres, kafka=False)
    assert code == 0 and "1 replayed (applied 1)" in out
    assert "crm.audit_log:7" in stored_state(postgres).live_rows
