"""finetune_dataset masks what the product knows of a turn's customer, in any spelling, against
real Kafka, S3 and PostgreSQL: a customer built by the real customers assets from three source
systems (CRM, loyalty, and a check-in table holding a passport, named by a catalogue file) types
their passport number, national insurance number, date of birth, loyalty number and address in
spellings no pattern recognises; none of them reaches the export."""

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from dagster import materialize

from rag_assets.feedback.assets import conversation_log, finetune_dataset
from tests.catalogues import demo_catalogue_with, use_catalogue
from tests.integration.customers.helpers import catch_up, debezium
from tests.integration.customers.helpers import publish as publish_cdc
from tests.integration.feedback.helpers import as_records, turn
from tests.integration.feedback.helpers import publish as publish_feedback

pytestmark = pytest.mark.integration

CHECKIN = """\
- system: checkin
  table: apis
  topics: [cdc.checkin.apis]
  identity:
    email: [email]
    passport: [passport_number]
    full_name: passenger_name
    date_of_birth: birth_date
"""
ALICE = {"id": 1, "first_name": "Alice", "last_name": "Moreau", "email": "alice.moreau@example.org",
         "phone": "07700 900101", "date_of_birth": "1985-02-11", "address_line1": "1 Quay Street",
         "city": "Leeds", "postcode": "LS1 4AB", "country": "GB", "national_id": "QQ123456A"}
ALICE_LOYALTY = {"id": 70001, "member_number": "LY-70001", "email": "alice.moreau@example.org",
                 "full_name": "Alice Moreau", "date_of_birth": "1985-02-11", "tier": "gold",
                 "points": 1200}
ALICE_APIS = {"id": 9, "email": "alice.moreau@example.org", "passport_number": "533401238",
              "passenger_name": "Alice Moreau", "birth_date": "11/02/1985"}
T0 = datetime(2025, 2, 3, 9, tzinfo=UTC)
# Spellings no pattern masks without knowing the customer: no keyword before the passport, a
# national insurance number with a prefix HMRC never issues, a date of birth without "born".
TYPED = ["533-401-238", "533 401 238", "qq 12 34 56 a", "11 February 1985", "ly 70001",
         "1 quay st"]


def turns() -> list[dict]:
    rng = random.Random(7)
    asked = [
        ("crm:1", "The number on my document is 533-401-238, is that enough for booking ABC123?",
         "Yes, 533 401 238 is on booking ABC123 now."),
        ("loyalty:70001", "My NI is qq 12 34 56 a and I was 11 February 1985 on the form",
         "Thanks, your details match."),
        ("crm:1", "Please send the ly 70001 card to 1 quay st, not the old one",
         "We will post it to 1 quay st within 5 days."),
        (None, "Can I fly on 2025-03-01 with flight BA123?", "Yes, BA123 flies on 2025-03-01."),
    ]
    return [turn(rng, f"conv-{n}", 1, T0 + timedelta(minutes=n), customer_ref=ref,
                 question=question, answer=answer, rating=5, comment=question)
            for n, (ref, question, answer) in enumerate(asked)]


def test_identifiers_the_graph_knows_are_masked_in_the_customer_turns(
        kafka, s3, postgres, tmp_path, monkeypatch):
    use_catalogue(monkeypatch, demo_catalogue_with(tmp_path, CHECKIN))
    publish_cdc(kafka, [debezium(system, table, "r", pk=row["id"], after=row, ts_ms=1_000)
                        for system, table, row in (("crm", "customers", ALICE),
                                                   ("loyalty", "members", ALICE_LOYALTY),
                                                   ("checkin", "apis", ALICE_APIS))])
    catch_up(kafka, postgres)
    publish_feedback(kafka, as_records(turns()))
    resources = {"kafka": kafka, "s3": s3, "postgres": postgres}
    assert materialize([conversation_log], resources=resources).success

    result = materialize([finetune_dataset], resources=resources)

    assert result.success
    metadata = result.asset_materializations_for_node("finetune_dataset")[0].metadata
    assert metadata["records_out"].value == 4
    assert metadata["customers_known_for_masking"].value == 1  # crm:1 and loyalty:70001
    version = metadata["version"].value
    body = s3.get_client().get_object(Bucket=s3.lake_bucket,
                                      Key=f"finetune/{version}/train.jsonl")["Body"].read().decode()
    for typed in TYPED:
        assert typed.lower() not in body.lower(), typed
    users = {json.loads(line)["messages"][1]["content"] for line in body.splitlines()}
    assert users == {
        "The number on my document is [PASSPORT], is that enough for booking ABC123?",
        "My NI is [NATIONAL_ID] and I was [DOB] on the form",
        "Please send the [LOYALTY] card to [ADDRESS], not the old one",
        "Can I fly on 2025-03-01 with flight BA123?",  # nobody's: left as typed
    }
    for value in metadata.values():
        assert not any(typed in str(value) for typed in TYPED)
