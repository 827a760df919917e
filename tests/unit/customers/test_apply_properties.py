"""Property: the pure steps behind source_records, identity_graph and customer_profiles take any
row a parsed event can carry — any JSON value in any column the product reads — without raising.

The item guard would set such an event or record aside, but a value the product can store must
not cost the customer a profile; this test finds the values that would (it found a date of birth
given as an integer number of days beyond the calendar, which raised OverflowError)."""

from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag_assets.catalogue.active import active_catalogue
from rag_assets.customers.cdc_events import ChangeEvent, parse_cdc_record
from rag_assets.customers.identity_graph import node_from_record
from rag_assets.customers.profiles import build_profile
from rag_assets.customers.source_state import apply_change_events
from tests.fuzz_inputs import encode, json_values

CATALOGUE = active_catalogue()  # the shipped one: the demo's tables
TABLES = sorted(CATALOGUE.identity_columns)
# Every column the identity mapping names, and every column a profile role reads.
COLUMNS = sorted({column for mapping in CATALOGUE.identity_columns.values()
                  for value in vars(mapping).values()
                  for column in ((value,) if isinstance(value, str) else (value or ()))}
                 | {column for role in CATALOGUE.profile_roles.values()
                    for column in (*(c for _, c in role.fields), role.status, role.upcoming_by)
                    if column})
rows = st.dictionaries(st.sampled_from(COLUMNS), json_values, max_size=12)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TABLES), st.lists(rows, min_size=1, max_size=3), st.sampled_from("cru"))
def test_any_row_values_link_and_build_a_profile(table, row_versions, op):
    events = []
    for version, row in enumerate(row_versions):
        value = encode({"op": op, "after": {**row, "id": 7},
                        "source": {"ts_ms": 1_700_000_000_000 + version}})
        event = parse_cdc_record(f"cdc.{table[0]}.{table[1]}", 0, version, b'{"id": 7}', value)
        if isinstance(event, ChangeEvent):
            events.append(event)
    changes = apply_change_events({}, {}, events)
    records = list(changes.records.values())
    for record in records:
        node_from_record(record)
    if records:
        profile = build_profile("cus_test", records, date(2026, 1, 1))
        assert profile["customer_id"] == "cus_test"
