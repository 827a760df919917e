"""A reference resolves to the customer it names, read one way everywhere: an email reference
finds the customer with that email even when another customer's loyalty number is spelled by
the same letters (before, the look-up and erasure also read the email as that loyalty number,
found two customers and answered for neither)."""

import pytest

from rag_assets.customers.lookup import resolve_customer_id
from rag_assets.demo.debezium import DebeziumEncoder
from rag_assets.privacy.resolution import matching_customers
from tests.integration.customers.helpers import catch_up, publish

pytestmark = pytest.mark.integration

ANA = {"id": 501, "first_name": "Ana", "last_name": "Lopez", "email": "ana.lopez@example.org",
       "phone": "07700 900501", "date_of_birth": "1990-03-04", "address_line1": "5 Dock St",
       "city": "Hull", "postcode": "HU1 1AA", "country": "GB", "national_id": "QQ500501A"}
# Another person, whose loyalty number spells Ana's email without its punctuation.
BEN_LOYALTY = {"id": 80002, "member_number": "ANALOPEZEXAMPLEORG", "email": "ben.ward@example.org",
               "phone": "+44 7700 900802", "full_name": "Ben Ward", "date_of_birth": "1966-09-09",
               "tier": "silver", "points": 300}


def test_an_email_reference_is_not_read_as_another_customers_loyalty_number(kafka, postgres):
    encoder = DebeziumEncoder(topic_prefix=kafka.topic_prefix)
    publish(kafka, [*encoder.snapshot("crm", "customers", [ANA], 1_000),
                    *encoder.snapshot("loyalty", "members", [BEN_LOYALTY], 1_000)])
    catch_up(kafka, postgres)
    with postgres.transaction() as cur:
        ana, ben = resolve_customer_id(cur, "crm:501"), resolve_customer_id(cur, "loyalty:80002")
        assert ana is not None and ben is not None and ana != ben
        assert resolve_customer_id(cur, "ana.lopez@example.org") == ana
        assert resolve_customer_id(cur, "ANALOPEZEXAMPLEORG") == ben
        assert matching_customers(cur, "Ana.Lopez@Example.org") == ({ana}, None)
