"""Replaying the Customer 360's dead letters: re-parse them with the current parser and apply the ones that now parse.

A dead letter is replayed after the cause was fixed — a parser that learnt a format, a table
newly named in the source catalogue, a limit raised. For each pending letter of the
source (oldest first):

* the original Kafka record is re-read at its topic/partition/offset when `kafka` is given and
  the record is still retained (it has the key, and the value of an oversized letter, which the
  table does not keep); otherwise the stored payload is parsed without a key;
* a record that still does not parse stays pending, with `replay_result` telling why now;
* the records that parse go through the asset's own code path (`cdc_apply.apply_events`:
  load, decide by version, save, queue for the identity graph), so a replayed event older than
  the stored state is skipped as stale like any late event.

Everything happens in the caller's transaction, and each replayed letter is marked in it
(`replayed_at`, `replay_result`; its payload cleared, `dead_letters.mark_replayed`): the change
and the mark commit together or not at all, so a replay applies each letter exactly once in
effect. Letters are locked (`FOR UPDATE`) and the partition's ledger lock is taken, so two
replays, or a replay and a run of the same partition, serialise.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rag_assets.customers import cdc_apply
from rag_assets.customers.cdc_events import ChangeEvent, parse_cdc_record
from rag_assets.platform import offset_ledger
from rag_assets.platform.dead_letters import DeadLetter, mark_replayed
from rag_assets.platform.item_guard import apply_setting_aside
from rag_assets.platform.erasure_lock import lock_for_writing
from rag_assets.platform.work_queue import QUEUE_CUSTOMER_AGAIN, QUEUE_RECORD_AGAIN

# Letters of a queue-draining step (set aside by the item guard) are replayed by queueing their
# keys again: the step takes them on its next batch, and sets them aside again if they still fail.
REQUEUED_SOURCES = ("identity_graph", "customer_profiles")
REPLAYABLE_SOURCES = ("cdc", *REQUEUED_SOURCES)


@dataclass
class ReplayReport:
    pending: int = 0
    applied: int = 0  # parsed and applied (its outcome is in `outcomes`)
    still_failing: int = 0
    outcomes: Counter = field(default_factory=Counter)  # applied / duplicate / stale / ...
    reasons: Counter = field(default_factory=Counter)  # why the still-failing ones fail
    reread_from_kafka: int = 0

    def as_dict(self) -> dict:
        return {"pending": self.pending, "applied": self.applied,
                "still_failing": self.still_failing, "outcomes": dict(self.outcomes),
                "reasons": dict(self.reasons), "reread_from_kafka": self.reread_from_kafka}


def _locked_pending(cur, source: str, limit: int | None) -> list[dict]:
    cur.execute(
        "SELECT id, topic, partition, \"offset\", payload FROM dead_letters"
        " WHERE replayed_at IS NULL AND source = %s ORDER BY id LIMIT %s FOR UPDATE",
        (source, limit))
    columns = [c.name for c in cur.description]
    return [dict(zip(columns, row)) for row in cur.fetchall()]


def _original(kafka, letter: dict):
    """The record as Kafka still holds it, or None when it is gone (retention) or unreachable."""
    if kafka is None or letter["topic"] is None or letter["offset"] is None:
        return None
    try:
        found = kafka.read_range(kafka.topic(letter["topic"]), letter["partition"],
                                 letter["offset"], letter["offset"] + 1, timeout_s=5.0)
    except TimeoutError:
        return None
    return found[0] if found else None


def replay_cdc_dead_letters(cur, kafka=None, limit: int | None = None,
                            config=None) -> ReplayReport:
    """Replay pending `cdc` dead letters inside the caller's transaction (see the module doc)."""
    config = config or cdc_apply.parser_config()
    report = ReplayReport()
    lock_for_writing(cur)  # before the letters are locked: an erasure deletes letters too
    letters = _locked_pending(cur, "cdc", limit)
    report.pending = len(letters)
    for topic, partition in sorted({(d["topic"], d["partition"]) for d in letters
                                    if d["topic"] is not None}):
        offset_ledger.lock_partition(cur, cdc_apply.CONSUMER, kafka.topic(topic) if kafka else topic,
                            partition)
    parsed: list[tuple[dict, ChangeEvent]] = []
    for letter in letters:
        record = _original(kafka, letter)
        if record is not None:
            report.reread_from_kafka += 1
            key, value = record.key, record.value
        else:
            key, value = None, None if letter["payload"] is None else bytes(letter["payload"])
        result = parse_cdc_record(letter["topic"] or "", letter["partition"] or 0,
                                  letter["offset"] or 0, key, value, config)
        if isinstance(result, DeadLetter):
            report.still_failing += 1
            report.reasons[result.reason] += 1
            cur.execute("UPDATE dead_letters SET replay_result = %s WHERE id = %s",
                        (f"still failing: {result.reason}", letter["id"]))
        else:
            parsed.append((letter, result))
    if not parsed:
        return report
    # Letters are replayed in their Kafka order per partition (the order the asset applies).
    parsed.sort(key=lambda pair: (pair[1].position.topic, pair[1].position.partition,
                                  pair[1].position.offset))
    changes, set_aside = apply_setting_aside(
        [event for _, event in parsed],
        lambda events: cdc_apply.apply_events(cur, events, cdc_apply.ApplyStats()),
        cur.connection.transaction, "cdc apply")
    letter_of = {id(event): letter for letter, event in parsed}
    for aside in set_aside:
        report.still_failing += 1
        report.reasons[aside.reason] += 1
        cur.execute("UPDATE dead_letters SET replay_result = %s WHERE id = %s",
                    (f"still failing: {aside.reason}", letter_of[id(aside.item)]["id"]))
    for event, outcome in (pair for part in changes for pair in part.outcomes):
        letter = letter_of[id(event)]
        report.applied += 1
        report.outcomes[outcome.value] += 1
        mark_replayed(cur, [letter["id"]], f"replayed: {outcome.value}")
    return report


def requeue_dead_letters(cur, source: str, limit: int | None = None) -> ReplayReport:
    """Queue the keys of pending letters of `source` (a queue-draining step) again."""
    ids = [letter["id"] for letter in _locked_pending(cur, source, limit)]
    if source == "identity_graph":  # object_key "system.table:pk" (RecordKey's text)
        cur.execute("INSERT INTO identity_pending (system, table_name, pk)"
                    " SELECT split_part(object_key, '.', 1),"
                    " split_part(split_part(object_key, ':', 1), '.', 2),"
                    " substr(object_key, strpos(object_key, ':') + 1)"
                    f" FROM dead_letters WHERE id = ANY(%s){QUEUE_RECORD_AGAIN}", (ids,))
    else:  # object_key is the customer id
        cur.execute("INSERT INTO profile_pending (customer_id)"
                    f" SELECT object_key FROM dead_letters WHERE id = ANY(%s){QUEUE_CUSTOMER_AGAIN}",
                    (ids,))
    mark_replayed(cur, ids, "queued again")
    report = ReplayReport(pending=len(ids), applied=len(ids))
    report.outcomes["queued again"] = len(ids)
    return report


def replay_dead_letters(cur, source: str, kafka=None, limit: int | None = None) -> ReplayReport:
    if source == "cdc":
        return replay_cdc_dead_letters(cur, kafka, limit)
    if source in REQUEUED_SOURCES:
        return requeue_dead_letters(cur, source, limit)
    raise ValueError(f"no replay for dead letters of {source!r}; replayable: {', '.join(REPLAYABLE_SOURCES)}")
