"""The source catalogue file: what a valid one means, and that every mistake is reported with
its file, its line and what to write instead."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag_assets.catalogue import CatalogueError, load_catalogue, parse_catalogue
from rag_assets.catalogue.active import DEMO_CATALOGUE

SHOP = """\
version: 1
sources:
  - system: shop
    table: orders
    topics: [mysql1.inventory.orders]
    identity:
      email: [buyer_email]
"""


def problems(text: str) -> list[tuple[int, str]]:
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(textwrap.dedent(text), "cat.yaml")
    assert all(line.startswith("cat.yaml:") for line in str(caught.value).splitlines())
    return [(p.line, p.message) for p in caught.value.problems]


def only_problem(text: str) -> tuple[int, str]:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def test_the_demo_catalogue_describes_the_four_demo_tables():
    catalogue = load_catalogue(DEMO_CATALOGUE)
    assert [t.name for t in catalogue.tables] == [
        "crm.customers", "booking.bookings", "loyalty.members", "support.tickets"]
    assert catalogue.short_references["crm"] == ("crm", "customers")
    assert catalogue.identity_columns[("loyalty", "members")].loyalty_number == ("member_number",)
    assert catalogue.profile_roles[("booking", "bookings")].upcoming_by == "departure_date"
    assert catalogue.survivorship.source_priority == ("crm", "loyalty", "booking", "support")
    assert [t.name for t in catalogue.tables_of_topic("cdc.support.tickets")] == ["support.tickets"]
    assert catalogue.tables_of_topic("cdc.crm.audit_log") == []


def test_defaults_fill_what_a_minimal_entry_leaves_out():
    catalogue = parse_catalogue(SHOP)
    (orders,) = catalogue.tables
    assert orders.primary_key == ("id",) and orders.envelope == "any"
    assert orders.profile.role == "person" and orders.line == 3
    assert catalogue.survivorship.source_priority == ("shop",)
    assert catalogue.feedback_topic == "app.feedback"


def test_a_topic_pattern_routes_debezium_default_names():
    catalogue = parse_catalogue(SHOP + textwrap.indent(textwrap.dedent("""\
        - system: billing
          table: invoices
          topic_pattern: 'pg[0-9]+\\.public\\.invoices'
          identity: {email: [email]}
        """), "  "))
    assert [t.name for t in catalogue.tables_of_topic("pg7.public.invoices")] == ["billing.invoices"]
    assert catalogue.tables_of_topic("pg7.public.invoices_old") == []  # the whole name matches
    assert catalogue.tables_of_topic("mysql1.inventory.orders")[0].name == "shop.orders"


def test_an_unknown_key_names_its_line_and_the_key_meant():
    line, message = only_problem(SHOP.replace("    topics:", "    topic: x\n    topics:"))
    assert line == 5
    assert "unknown key 'topic'" in message and "did you mean 'topics'" in message


def test_a_column_named_twice_is_reported_at_the_second_use():
    line, message = only_problem(SHOP + "      phone: [buyer_email]\n")
    assert line == 8
    assert "'buyer_email'" in message and "as email and as phone" in message


def test_a_role_without_its_required_fields():
    line, message = only_problem(SHOP + "    role: activity\n")
    assert line == 3 and "has role: activity but no `activity:` section" in message
    found = problems(SHOP + textwrap.indent(textwrap.dedent("""\
        role: activity
        activity:
          section: orders
          fields: {total: total}
        """), "    "))
    assert [(line, m) for line, m in found] == [
        (10, "the activity of table shop.orders needs `kind:`"),
        (10, "the activity of table shop.orders needs `summary:`")]


def test_a_section_for_another_role_is_refused():
    line, message = only_problem(SHOP + textwrap.indent(textwrap.dedent("""\
        membership:
          section: club
          fields: {level: level}
        """), "    "))
    assert line == 9 and "only read for role: membership" in message


def test_a_topic_pattern_matching_another_tables_topic():
    text = SHOP + textwrap.indent(textwrap.dedent("""\
        - system: shop
          table: order_lines
          topic_pattern: 'mysql1\\.inventory\\..*'
          identity: {email: [email]}
        """), "  ")
    line, message = only_problem(text)
    assert line == 3
    assert "'mysql1.inventory.orders'" in message and "also matched by table shop.order_lines" in message
    assert "(line 8)" in message


def test_a_bad_regex_is_reported_with_how_to_write_one():
    line, message = only_problem(SHOP.replace(
        "    topics: [mysql1.inventory.orders]", "    topic_pattern: 'mysql1.(orders'"))
    assert line == 5 and "not a valid regular expression" in message and "quote" in message


def test_a_key_given_twice_in_yaml_is_not_silently_overwritten():
    line, message = only_problem(SHOP.replace("    topics:", "    table: orders2\n    topics:"))
    assert line == 5 and "'table' is given twice" in message


def test_a_table_listed_twice_and_a_short_reference_used_twice():
    shop = SHOP + "    short_reference: shop\n"
    twice = shop + textwrap.indent(textwrap.dedent("""\
        - system: shop
          table: orders
          topics: [x.orders]
          identity: {email: [email]}
        - system: shop
          table: refunds
          topics: [x.refunds]
          short_reference: shop
          identity: {email: [email]}
        """), "  ")
    found = problems(twice)
    assert any(line == 9 and "already listed at line 3" in m for line, m in found), found
    assert any(line == 13 and "short_reference 'shop'" in m for line, m in found), found


def test_every_problem_is_reported_at_once_in_line_order():
    found = problems("""\
        version: 2
        default_phone_region: XX
        sources:
          - system: Shop
            table: orders
          - table: refunds
        survivorship:
          by_recency: [email, shoe_size]
          by_priority: [email]
        """)
    lines = [line for line, _ in found]
    assert lines == sorted(lines)
    messages = "\n".join(m for _, m in found)
    for expected in ("version must be 1", "'XX' is not a region code", "'Shop' must be lower-case",
                     "needs `system:`", "'shoe_size'", "cannot be both by_priority and by_recency"):
        assert expected in messages


def test_a_table_needs_topics_and_identity():
    found = problems("""\
        sources:
          - system: shop
            table: orders
        """)
    assert [m.split(";")[0] for _, m in found] == [
        "table shop.orders names no topic",
        "table shop.orders has no `identity:`"]


def test_invalid_yaml_names_the_line_and_an_unreadable_file_says_so(tmp_path):
    line, message = only_problem("sources:\n  - system: [shop\n")
    assert line == 3 and "not valid YAML" in message
    with pytest.raises(CatalogueError, match="cannot read the catalogue"):
        load_catalogue(tmp_path / "missing.yaml")


def test_a_summary_with_an_unmatched_brace():
    text = SHOP + textwrap.indent(textwrap.dedent("""\
        role: activity
        activity:
          kind: order
          section: orders
          fields: {total: total}
          summary: "order {total"
        """), "    ")
    line, message = only_problem(text)
    assert line == 13 and "unmatched brace" in message


# --- properties ------------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


def _catalogue_text(tables: list[tuple[str, str]]) -> str:
    entries = "".join(
        f"  - system: {system}\n"
        f"    table: {table}\n"
        f"    topics: [srv.{system}.{table}]\n"
        f"    short_reference: {system}_{i}\n"
        f"    identity:\n"
        f"      email: [email]\n"
        for i, (system, table) in enumerate(tables))
    return "version: 1\nsources:\n" + entries


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(names, names), min_size=1, max_size=8, unique=True))
def test_each_explicit_topic_routes_to_its_table_alone(tables):
    catalogue = parse_catalogue(_catalogue_text(tables))
    for i, (system, table) in enumerate(tables):
        assert [t.key for t in catalogue.tables_of_topic(f"srv.{system}.{table}")] == [(system, table)]
        assert catalogue.short_references[f"{system}_{i}"] == (system, table)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(names, names), min_size=1, max_size=6, unique=True), st.data())
def test_an_unknown_key_anywhere_in_a_table_is_reported_at_its_line(tables, data):
    lines = _catalogue_text(tables).splitlines(keepends=True)
    at = data.draw(st.sampled_from([i for i, line in enumerate(lines)
                                    if line.startswith("    ") and not line.startswith("      ")]))
    lines.insert(at, "    colour: blue\n")
    line, message = only_problem("".join(lines))
    assert line == at + 1 and "unknown key 'colour'" in message
