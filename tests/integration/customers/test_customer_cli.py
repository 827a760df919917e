"""`rag-assets customer --ref REF [--json]` against profiles built by the real assets."""

import argparse
import io
import json

import pytest

from rag_assets.customers.cli_commands import add_parsers, customers_cli
from tests.integration.customers.helpers import catch_up, debezium, publish, stored_state

pytestmark = pytest.mark.integration

ALICE = {"id": 1, "first_name": "Alice", "last_name": "Moreau", "email": "alice@example.org",
         "phone": "+447700900001", "date_of_birth": 5520, "address_line1": "1 Quay St",
         "city": "Leeds", "postcode": "LS1 4AB", "country": "GB", "national_id": "QQ123456A"}
MEMBER = {"id": 70001, "member_number": "SKL-100-200", "full_name": "Alice Moreau",
          "email": "ALICE@example.org", "phone": "07700 900001", "tier": "Silver", "points": 5000,
          "date_of_birth": "11/02/1985"}
TWIN = {**ALICE, "id": 2, "first_name": "Bea", "email": "bea@example.org", "phone": "+447700900002",
        "national_id": "QQ999999Z", "date_of_birth": 9000}


def cli(args, postgres, capsys=None):
    parser = argparse.ArgumentParser(prog="rag-assets")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    out = io.StringIO()
    return customers_cli(parser.parse_args(args), postgres=postgres, out=out), out.getvalue()


def test_customer_lookup_by_every_kind_of_reference(kafka, postgres, capsys):
    publish(kafka, [
        debezium("crm", "customers", "r", pk=1, after=ALICE, ts_ms=1_000, tx_id=1, lsn=10),
        debezium("crm", "customers", "r", pk=2, after=TWIN, ts_ms=1_000, tx_id=1, lsn=10),
        debezium("loyalty", "members", "r", pk=70001, after=MEMBER, ts_ms=1_000, tx_id=2, lsn=20),
    ], partitions=1)
    catch_up(kafka, postgres)
    customer_id = stored_state(postgres).assignments["crm.customers:1"]

    for ref in (customer_id, "crm:1", "loyalty.members:70001", "Alice@Example.org",
                "skl100200", "07700 900001", "+44 7700 900001"):
        code, out = cli(["customer", "--ref", ref, "--json"], postgres)
        assert code == 0, ref
        profile = json.loads(out)
        assert profile["customer_id"] == customer_id
        assert profile["golden"]["given_name"]["value"] == "Alice"
        assert profile["profile_version"] == 1 and profile["updated_at"]

    code, out = cli(["customer", "--ref", "alice@example.org"], postgres)
    assert code == 0
    assert out.startswith(f"Alice Moreau  {customer_id}")
    assert "SKL100200" in out.replace("-", "") or "SKL-100-200" in out
    assert "alice@example.org" in out and "1 Quay St" in out

    assert cli(["customer", "--ref", "nobody@example.org"], postgres)[0] == 1
    assert cli(["customer", "--ref", "Leeds"], postgres)[0] == 1
    assert cli(["customer", "--ref", "bad\x00ref"], postgres)[0] == 2
    assert "invalid reference" in capsys.readouterr().err
    # A SQL-looking reference is data: nothing matches, nothing breaks.
    assert cli(["customer", "--ref", "x' OR '1'='1"], postgres)[0] == 1


def test_a_look_up_before_any_customer_data_says_so(postgres, capsys):
    # The `postgres` fixture's schema is new: no Customer 360 table exists in it yet.
    code, out = cli(["customer", "--ref", "crm:1"], postgres)
    assert (code, out) == (1, "")
    assert capsys.readouterr().err.strip() == (
        f"no customer data in schema {postgres.db_schema!r} yet: the Customer 360 assets have "
        "not been materialised there")
