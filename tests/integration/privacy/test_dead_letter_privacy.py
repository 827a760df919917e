"""Dead letters and personal data against real Kafka, S3 and PostgreSQL.

Bad CDC events and feedback turns go through the real assets and become dead letters, each
carrying something of Alice (her e-mail in another casing and spacing, only her national id, only
her name, only her record's Kafka key, her reference in a turn) or the same of Bob; an erasure of
Alice deletes hers and keeps Bob's and the letters of no one. A replayed letter keeps its reason
and position but loses its payload; the retention asset clears old payloads only.
"""

import json
from datetime import timedelta

import pytest
from dagster import materialize

from rag_assets.privacy.assets import dead_letter_payload_retention
from rag_assets.privacy.erasure import erase_customer
from rag_assets.feedback.assets import conversation_log
from rag_assets.platform.db import ensure_schema
from rag_assets.customers.dead_letter_ties import ties_of
from rag_assets.platform.dead_letters import RETENTION_ENV, DeadLetter, store_dead_letters
from tests.catalogues import AUDIT_LOG, demo_catalogue_with, use_catalogue
from tests.integration.customers.bad_events import envelope, raw
from tests.integration.customers.helpers import catch_up, customers_command, key_of, publish
from tests.integration.privacy.test_erasure import cdc_messages, publish_json, turn

pytestmark = pytest.mark.integration


def bad(after: dict) -> bytes:
    """A CDC value the parser rejects (unknown op) that still carries `after`."""
    return json.dumps(envelope(op="x", after=after)).encode()


# label -> (Kafka key, value): each rejected by the parser; only the key or the value ties it.
LETTERS = {
    "alice email": (None, b'{"op": "c", "after": {"id": 77, "email": "  ALICE.MOREAU@EXAMPLE.ORG '
                          b' ", "first_na'),
    "alice national id": (None, bad({"id": 78, "national_id": "qq 12 34 56 a"})),
    "alice name": (None, bad({"id": 79, "first_name": "ALICE", "last_name": "Moréau"})),
    "alice record key": (key_of(1), bad({"id": 1})),
    "bob email": (None, b'{"op": "c", "after": {"id": 87, "email": " BOB.STONE@EXAMPLE.ORG",'),
    "bob national id": (None, bad({"id": 88, "national_id": "qq-654321-b"})),
    "bob name": (None, bad({"id": 89, "first_name": "Bob", "last_name": "STONE"})),
    "bob record key": (key_of(2), bad({"id": 2})),
    "another alice": (None, bad({"id": 90, "first_name": "Alice", "last_name": "Stone"})),
    "no one": (None, b"\xff\xfe binary junk"),
}
ALICE_LETTERS = {label for label in LETTERS if label.startswith("alice")}


def letters_by_payload(postgres) -> dict[bytes | None, dict]:
    with postgres.transaction() as cur:
        cur.execute("SELECT payload, reason, topic, \"offset\", replayed_at, payload_cleared_at,"
                    " ties FROM dead_letters ORDER BY id")
        columns = [c.name for c in cur.description]
        rows = [dict(zip(columns, row)) for row in cur.fetchall()]
    return {None if r["payload"] is None else bytes(r["payload"]): r for r in rows}


def test_an_erasure_deletes_the_dead_letters_tied_to_the_person_and_no_others(
        kafka, postgres, s3):
    publish(kafka, [*cdc_messages(kafka),
                    *(raw(value, key=key) for key, value in LETTERS.values())])
    catch_up(kafka, postgres)
    # Turns rejected for their rating: tied by their customer reference alone ("crm:1" is too
    # short to be read from a payload).
    turns = [{**turn(1, "crm:1", "alpha question"), "rating": 9},
             {**turn(2, "crm:2", "bravo question"), "rating": 9}]
    publish_json(kafka, "app.feedback", turns, key=lambda v: v["conversation_id"].encode())
    assert materialize([conversation_log], resources={"kafka": kafka, "s3": s3,
                                                      "postgres": postgres}).success
    # A letter stored before letters kept their ties: found by the exact bytes of her email.
    with postgres.transaction() as cur:
        store_dead_letters(cur, [
            DeadLetter("cdc", "legacy", b'{"email": "alice.moreau@example.org"}', object_key="a"),
            DeadLetter("cdc", "legacy", b'{"email": "bob.stone@example.org"}', object_key="b")],
            ties_of=ties_of)
        cur.execute("UPDATE dead_letters SET ties = NULL WHERE reason = 'legacy'")
    before = letters_by_payload(postgres)
    feedback = {p for p, r in before.items() if r["topic"] and "feedback" in r["topic"]}
    assert {value for _, value in LETTERS.values()} | feedback <= set(before)
    assert len(feedback) == 2 and len(before) == len(LETTERS) + 4
    assert not any(w in str(r["ties"]).lower() for r in before.values()
                   for w in ("alice", "moreau", "qq123456a", "crm.customers"))

    result = erase_customer(postgres, s3, "crm:1", request_id="req-dl")

    after = letters_by_payload(postgres)
    kept = {value: label for label, (_, value) in LETTERS.items() if value in after}
    assert set(kept.values()) == set(LETTERS) - ALICE_LETTERS
    assert [json.loads(p)["customer_ref"] for p in feedback if p in after] == ["crm:2"]
    assert b'{"email": "bob.stone@example.org"}' in after
    assert b'{"email": "alice.moreau@example.org"}' not in after
    assert result.counts["dead_letters_deleted"] == len(ALICE_LETTERS) + 2
    assert len(after) == len(before) - result.counts["dead_letters_deleted"]

    # The same bad events redelivered after the erasure: each is a letter with its reason and
    # position; hers carry no payload (tied by her e-mail, national id or record key — not by
    # her name alone, which a namesake's letter may carry), everyone else's keep theirs.
    with postgres.transaction() as cur:
        cur.execute("SELECT max(id) FROM dead_letters")
        last_id = cur.fetchone()[0]
    publish(kafka, [raw(value, key=key) for key, value in LETTERS.values()])
    catch_up(kafka, postgres)
    with postgres.transaction() as cur:
        cur.execute("SELECT payload, reason, \"offset\", payload_cleared_at FROM dead_letters"
                    " WHERE id > %s", (last_id,))
        redelivered = cur.fetchall()
    assert len(redelivered) == len(LETTERS)
    with_payload = {bytes(payload) for payload, *_ in redelivered if payload is not None}
    assert {label for label, (_, value) in LETTERS.items() if value not in with_payload} == \
        {"alice email", "alice national id", "alice record key"}
    assert all(reason and offset is not None and (payload is None) == (cleared is not None)
               for payload, reason, offset, cleared in redelivered)


def test_a_replayed_dead_letter_keeps_its_reason_and_position_but_not_its_payload(
        kafka, postgres, monkeypatch, tmp_path):
    audit = raw(envelope(after={"id": 7, "action": "login", "user": "alice.moreau@example.org"},
                         table="audit_log"), key=key_of(7), topic="cdc.crm.audit_log")
    broken = raw(b'{"op": "c", "after": {"email": "bob.stone@example.org"', key=None)
    publish(kafka, [audit, broken], partitions=1)
    catch_up(kafka, postgres)
    before = letters_by_payload(postgres)
    assert {audit.value, broken.value} == set(before)
    use_catalogue(monkeypatch, demo_catalogue_with(tmp_path, AUDIT_LOG))  # the table is known now

    code, out = customers_command(["dead-letters", "replay", "--source", "cdc"], postgres, kafka)

    assert code == 1 and "1 replayed (applied 1)" in out  # the broken one still fails
    after = letters_by_payload(postgres)
    replayed = after[None]
    assert replayed["reason"] == before[audit.value]["reason"]
    assert (replayed["topic"], replayed["offset"]) == (before[audit.value]["topic"],
                                                       before[audit.value]["offset"])
    assert replayed["replayed_at"] is not None and replayed["payload_cleared_at"] is not None
    assert after[broken.value]["replayed_at"] is None  # still failing: its payload is kept
    assert after[broken.value]["payload_cleared_at"] is None


def test_retention_clears_the_payloads_older_than_the_setting_and_keeps_the_letters(
        postgres, monkeypatch):
    ages = {b"31 days": 31, b"29 days": 29, b"new": 0, b"91 days": 91}
    with postgres.transaction() as cur:
        ensure_schema(cur, postgres.db_schema)
        store_dead_letters(cur, [DeadLetter("cdc", f"reason {p.decode()}", p, object_key=p.decode())
                                 for p in ages], ties_of=ties_of)
        for payload, days in ages.items():
            cur.execute("UPDATE dead_letters SET created_at = now() - %s WHERE payload = %s",
                        (timedelta(days=days, minutes=1), payload))

    def retention(days: str) -> dict:
        monkeypatch.setenv(RETENTION_ENV, days)
        result = materialize([dead_letter_payload_retention], resources={"postgres": postgres})
        return {k: v.value for k, v in result.asset_materializations_for_node(
            "dead_letter_payload_retention")[0].metadata.items()}

    assert retention("30") == {"payloads_cleared": 2, "retention_days": 30, "dead_letters": 4,
                               "payloads_kept": 2}
    with postgres.transaction() as cur:
        cur.execute("SELECT object_key, reason, payload IS NULL, payload_cleared_at IS NOT NULL"
                    " FROM dead_letters ORDER BY object_key")
        rows = cur.fetchall()
    assert rows == [("29 days", "reason 29 days", False, False),
                    ("31 days", "reason 31 days", True, True),
                    ("91 days", "reason 91 days", True, True),
                    ("new", "reason new", False, False)]
    assert retention("30")["payloads_cleared"] == 0
    assert retention("1")["payloads_cleared"] == 1  # the 29-day-old one
    monkeypatch.setenv(RETENTION_ENV, "thirty")
    with pytest.raises(Exception, match=f"{RETENTION_ENV} must be a whole number of days"):
        materialize([dead_letter_payload_retention], resources={"postgres": postgres})
