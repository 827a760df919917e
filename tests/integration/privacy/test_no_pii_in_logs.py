"""Emails and phone numbers never reach logs or Dagster metadata.

The customers and feedback assets (and their checks, and the erasure asset) run over test
personal data with distinctive emails and phone numbers — including a bad CDC event and a bad
feedback event holding them, which become dead letters — through `dagster.materialize` on an
instance. Every event-log record of those runs (messages, materialisation metadata, check
results, errors; serialised whole) and the captured stdout/stderr are scanned for the values in
raw and normalised forms.
"""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance, materialize
from dagster._serdes import serialize_value

from rag_assets.customers.assets import (
    customer_profiles,
    identity_graph,
    source_records,
)
from rag_assets.privacy.assets import customer_erasures
from rag_assets.demo.debezium import DebeziumEncoder
from rag_assets.feedback.assets import feedback_assets
from rag_assets.feedback.checks import feedback_checks
from resources.sentiment import SentimentResource
from tests.integration.customers.helpers import publish

pytestmark = pytest.mark.integration

PERSON = {"id": 41, "first_name": "Zelda", "last_name": "Quartermaine",
          "email": "Zelda.Quartermaine@Example.net", "phone": "07700 900777",
          "date_of_birth": "1979-04-05", "address_line1": "7 Wharf Lane", "city": "Hull",
          "postcode": "HU1 1AA", "country": "GB", "national_id": "QQ777777Z"}
LOYALTY = {"id": 90041, "member_number": "ZQ-99041", "email": "zelda.quartermaine@example.net",
           "phone": "+44 7700 900777", "full_name": "Zelda Quartermaine",
           "date_of_birth": "1979-04-05", "tier": "silver", "points": 10}
OTHER = {**PERSON, "id": 42, "first_name": "Yusuf", "last_name": "Oyelaran",
         "email": "yusuf.oyelaran@example.net", "phone": "07700 900888", "national_id": "QQ888888Y"}
# Every spelling of the personal data that must not appear.
NEEDLES = ["Zelda.Quartermaine@Example.net", "zelda.quartermaine@example.net",
           "yusuf.oyelaran@example.net", "07700 900777", "+447700900777", "7700900777",
           "+44 7700 900777", "07700 900888", "+447700900888", "7700900888", "ZQ-99041", "ZQ99041",
           "QQ777777Z", "QQ888888Y"]
T0 = datetime(2025, 3, 4, 10, tzinfo=UTC)


def feedback_events() -> list[bytes]:
    def turn(n, ref, question, **extra):
        return json.dumps({
            "conversation_id": f"c{n}", "turn_id": 1, "customer_ref": ref,
            "ts": (T0 + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "question": question, "answer": "We will contact you shortly.",
            "model_id": "model-a", "latency_ms": 700, "retrieved_ids": [], "rating": 5,
            "comment": "thanks, reach me at +44 7700 900777", **extra}).encode()
    return [
        turn(1, "zelda.quartermaine@example.net",
             "Mail Zelda.Quartermaine@Example.net or call 07700 900777 about my refund"),
        turn(2, "ZQ-99041", "my loyalty number is ZQ-99041, phone +447700900777"),
        turn(3, "yusuf.oyelaran@example.net", "call me on 07700 900888"),
        turn(4, "zelda.quartermaine@example.net", "bad latency", latency_ms="07700 900777"),
        b'{"customer_ref": "zelda.quartermaine@example.net", "question": "truncated',
    ]


PHONE_DIGITS = ("7700900777", "7700900888")
_PHONE_LIKE = re.compile(r"[+\d][\d\s().-]{6,}\d")


def scan(text: str) -> list[str]:
    """The needles in `text`, and phone numbers however they are spaced or punctuated."""
    lowered = text.lower()
    found = [n for n in NEEDLES if n.lower() in lowered]
    for match in _PHONE_LIKE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        found += [d for d in PHONE_DIGITS if d in digits]
    return found


def test_the_scan_finds_every_spelling():
    for text in ["x Zelda.QUARTERMAINE@example.net y", "tel (07700) 900-777", "+44 7700 900 888",
                 '"phone": "+447700900777"', "zq99041"]:
        assert scan(text), text
    assert not scan("offset 77009 and 00777, run 1234-5678")


def test_runs_log_no_email_or_phone(kafka, postgres, s3, capfd, request):
    # Python logging records too, when pytest's logging plugin is on (it may be disabled).
    caplog = (request.getfixturevalue("caplog")
              if request.config.pluginmanager.has_plugin("logging-plugin") else None)
    encoder = DebeziumEncoder(topic_prefix=kafka.topic_prefix)
    messages = [*encoder.snapshot("crm", "customers", [PERSON, OTHER], 1_000),
                *encoder.snapshot("loyalty", "members", [LOYALTY], 1_000)]
    publish(kafka, messages)
    producer = kafka.producer()
    # A bad CDC event holding personal data: a dead letter whose reason must not quote it.
    bad = json.dumps({"before": None, "after": {"id": 43, "email": "zelda.quartermaine@example.net",
                                                "phone": "07700 900777"},
                      "op": "zz", "source": {"db": "crm", "table": "customers", "ts_ms": 5}})
    producer.send(kafka.topic("cdc.crm.customers"), key=b'{"id": 43}', value=bad.encode())
    feedback_topic = kafka.topic("app.feedback")
    kafka.create_topics([feedback_topic], partitions=1)
    for value in feedback_events():
        producer.send(feedback_topic, key=b"k", value=value)
    erasure_topic = kafka.topic("privacy.erasure")
    kafka.create_topics([erasure_topic], partitions=1)
    producer.send(erasure_topic, value=json.dumps(
        {"customer_ref": "yusuf.oyelaran@example.net", "request_id": "r-1"}).encode())
    producer.send(erasure_topic, value=b'{"customer_ref": "' + b"07700 900777" * 40 + b'"}')
    producer.flush()
    producer.close()

    resources = {"kafka": kafka, "postgres": postgres, "s3": s3, "sentiment": SentimentResource()}
    instance = DagsterInstance.ephemeral()
    customers = materialize([source_records, identity_graph, customer_profiles],
                            resources=resources, instance=instance)
    feedback = materialize([*feedback_assets, *feedback_checks], resources=resources,
                           instance=instance)
    erasure = materialize([customer_erasures], resources=resources, instance=instance)
    assert customers.success and feedback.success and erasure.success
    # The data did go through (so the scan below is meaningful).
    meta = customers.asset_materializations_for_node("source_records")[0].metadata
    assert meta["events_applied"].value == 3 and meta["dead_letters"].value == 1
    meta = feedback.asset_materializations_for_node("conversation_log")[0].metadata
    assert meta["dead_letters"].value == 2
    meta = erasure.asset_materializations_for_node("customer_erasures")[0].metadata
    assert meta["requests_applied"].value == 1 and meta["dead_letters"].value == 1

    leaks, seen = {}, []
    for result in (customers, feedback, erasure):
        records = instance.all_logs(result.run_id)
        assert records
        for record in records:
            text = serialize_value(record)
            seen.append(text)
            found = scan(text)
            if found:
                what = record.dagster_event.event_type_value if record.dagster_event else "log"
                leaks.setdefault(what, set()).update(found)
    # The scan saw the metadata, the check results and the log messages.
    everything = "\n".join(seen)
    for expected in ("events_applied", "dead_letters_by_reason", "ASSET_CHECK_EVALUATION",
                     "fine-tuning export", "erasure request(s) applied"):
        assert expected in everything, expected
    captured = capfd.readouterr()
    for stream, text in (("stdout", captured.out), ("stderr", captured.err),
                         ("python logging", caplog.text if caplog else "")):
        if found := scan(text):
            leaks[stream] = set(found)
    assert not leaks, f"personal data in logs or metadata: {leaks}"
