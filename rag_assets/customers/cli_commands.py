"""`rag-assets customer` and `rag-assets dead-letters`: the Customer 360 on the command line.

    rag-assets customer --ref REF [--json]         a unified profile, by customer id (cus_…),
                                                   record (system:pk), email, loyalty number or phone
    rag-assets dead-letters list [--source S]      pending dead letters (reason and position)
    rag-assets dead-letters replay --source cdc    re-parse and apply the ones that parse now,
                                                   then update the identity graph and profiles

The profile is printed in full, personal data included: the caller asked for that customer.
Connection settings come from the environment (PGHOST…, KAFKA_BOOTSTRAP_SERVERS,
RAG_TOPIC_PREFIX), as for the Dagster deployment; `customer` only reads, as the retrieval role
when one is configured (RAG_RETRIEVAL_PGUSER); `--pg-schema` names the schema (default `rag`).

Exit status: 0 on success, 1 when no customer matches the reference (or a replay left letters
failing), 2 for an invalid reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import TextIO

from psycopg.errors import UndefinedTable

from rag_assets.platform.db_roles import reader_login_env
from rag_assets.platform.pg_connection import connector_from_env

def add_parsers(commands) -> None:
    """Add the `customer` and `dead-letters` sub-commands to `rag-assets`' subparsers."""
    customer = commands.add_parser(
        "customer", help="show a customer's unified profile",
        description="Show the unified profile of the customer a reference points to: a customer "
                    "id (cus_…), a source record (system.table:pk, or short:pk with a "
                    "short_reference of the source catalogue), an email, a loyalty number or a "
                    "phone number.")
    customer.add_argument("--ref", required=True, help="customer id, record, email, loyalty number or phone")
    customer.add_argument("--json", action="store_true", help="print the stored profile as JSON")
    customer.add_argument("--pg-schema", default=None, help="PostgreSQL schema (default: RAG_PG_SCHEMA, else rag)")
    customer.set_defaults(handler=customers_cli)

    letters = commands.add_parser("dead-letters", help="list or replay dead letters")
    letters.add_argument("action", choices=["list", "replay"])
    letters.add_argument("--source", default=None,
                         help="pipeline stage (cdc, feedback, documents); replay needs --source cdc")
    letters.add_argument("--limit", type=int, default=None, help="at most this many letters")
    letters.add_argument("--json", action="store_true", help="machine-readable output")
    letters.add_argument("--pg-schema", default=None, help="PostgreSQL schema (default: RAG_PG_SCHEMA, else rag)")
    letters.set_defaults(handler=customers_cli)


def _postgres(schema: str | None, reader: bool = False):
    if reader:  # a look-up connects without Dagster's resources, so it starts in a blink
        connector = connector_from_env(*reader_login_env())
        return dataclasses.replace(connector, db_schema=schema) if schema else connector
    # Imported here (and below): the deployment's resources bring Dagster, LanceDB and boto3.
    from resources.defaults import resource_from_environment

    postgres = resource_from_environment("postgres")
    return postgres.model_copy(update={"db_schema": schema}) if schema else postgres


def _kafka():
    from resources.defaults import resource_from_environment

    return resource_from_environment("kafka") if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else None


def customers_cli(args: argparse.Namespace, postgres=None, kafka=None,
                  out: TextIO | None = None) -> int:
    """Run `customer` or `dead-letters`; resources default to the environment's."""
    out = out or sys.stdout
    postgres = postgres or _postgres(getattr(args, "pg_schema", None),
                                     reader=args.command == "customer")
    if args.command == "customer":
        return _customer(args, postgres, out)
    if args.action == "list":
        return _list(args, postgres, out)
    if kafka is None:
        kafka = _kafka()
    return _replay(args, postgres, kafka or None, out)  # kafka=False: stored payloads only


# --------------------------------------------------------------------------- customer


def _customer(args, postgres, out: TextIO) -> int:
    from rag_assets.customers.lookup import InvalidReference, find_profile

    try:
        with postgres.transaction() as cur:
            profile = find_profile(cur, args.ref)
    except InvalidReference as error:
        print(f"invalid reference: {error}", file=sys.stderr)
        return 2
    except UndefinedTable:
        print(f"no customer data in schema {postgres.db_schema!r} yet: the Customer 360 assets "
              "have not been materialised there", file=sys.stderr)
        return 1
    if profile is None:
        print(f"no customer matches {args.ref!r} (or it matches more than one)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(profile, indent=2, sort_keys=True, default=str), file=out)
    else:
        print(format_profile(profile), file=out)
    return 0


def _value(golden: dict, name: str) -> str:
    return str(golden[name]["value"]) if name in golden else "-"


# Profile keys every profile has; any other list is an activity section of the catalogue.
_PROFILE_KEYS = frozenset({"schema_version", "customer_id", "golden", "emails", "phones",
                           "addresses", "last_interactions", "sources", "last_changed_ms",
                           "content_hash", "profile_version", "updated_at"})
_PERSON_FIELDS = frozenset({"given_name", "surname", "date_of_birth", "email", "phone", "address"})
_PROVENANCE = frozenset({"source", "version_ts_ms", "cdc_position"})


def _shown_fields(item: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in item.items() if k not in _PROVENANCE and v is not None)


def format_profile(profile: dict) -> str:
    golden = profile.get("golden", {})
    name = " ".join(v for v in (_value(golden, "given_name"), _value(golden, "surname")) if v != "-")
    lines = [
        f"{name or '(no name)'}  {profile['customer_id']}  "
        f"(profile v{profile.get('profile_version')}, updated {profile.get('updated_at')})",
        f"  born      {_value(golden, 'date_of_birth')}",
        f"  email     {_value(golden, 'email')}",
        f"  phone     {_value(golden, 'phone')}",
    ]
    if "address" in golden:
        address = golden["address"]["value"]
        lines.append("  address   " + ", ".join(
            str(address[k]) for k in ("line", "city", "postcode", "country") if address.get(k)))
    for section, fields in golden.items():  # the catalogue's membership sections
        if section not in _PERSON_FIELDS:
            lines.append(f"  {section:<9} {_shown_fields(fields)}")
    for title, key in (("emails", "emails"), ("phones", "phones")):
        if len(profile.get(key, [])) > 1:
            lines.append(f"  all {title:<6}" + "; ".join(str(e["value"]) for e in profile[key]))
    for section, items in profile.items():  # the catalogue's activity sections
        if section not in _PROFILE_KEYS and isinstance(items, list):
            lines.extend(f"  {section}: {_shown_fields(item)}" for item in items)
    for item in profile.get("last_interactions", []):
        lines.append(f"  recent    {item['summary']}  [{item['source']}]")
    lines.append(f"  sources   {', '.join(profile.get('sources', []))}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- dead letters


def _list(args, postgres, out: TextIO) -> int:
    from rag_assets.platform.db import ensure_schema
    from rag_assets.platform.dead_letters import pending_dead_letters

    with postgres.transaction() as cur:
        ensure_schema(cur, postgres.db_schema)
        letters = pending_dead_letters(cur, args.source)
        cur.execute("SELECT id, replay_result FROM dead_letters WHERE replayed_at IS NULL"
                    " AND replay_result IS NOT NULL")
        last_attempt = dict(cur.fetchall())
    if args.limit is not None:
        letters = letters[:args.limit]
    if args.json:
        print(json.dumps([_letter_json(d, last_attempt.get(d["id"])) for d in letters], indent=2),
              file=out)
        return 0
    for d in letters:
        where = (f"{d['topic']}/{d['partition']}@{d['offset']}" if d["topic"] is not None
                 else f"{d['object_key']}#{d['object_version']}")
        size = "-" if d["payload"] is None else f"{len(d['payload'])}B"
        line = f"{d['id']:>6}  {d['source']:<9} {where:<40} {size:>9}  {d['reason']}"
        if last_attempt.get(d["id"]):
            line += f"  [last replay: {last_attempt[d['id']]}]"
        print(line, file=out)
    print(f"{len(letters)} pending dead letter(s)" + (f" of {args.source}" if args.source else ""),
          file=out)
    return 0


def _letter_json(letter: dict, last_attempt: str | None) -> dict:
    payload = letter["payload"]
    return {
        **{k: letter[k] for k in ("id", "source", "reason", "topic", "partition", "offset",
                                  "object_key", "object_version")},
        "payload_bytes": None if payload is None else len(payload),
        "payload_preview": None if payload is None else bytes(payload[:200]).decode("utf-8", "replace"),
        "created_at": letter["created_at"].isoformat(),
        "last_replay": last_attempt,
    }


def link_and_refresh(postgres) -> tuple:
    """Take every queued record through the identity graph, then every queued profile; returns
    their (LinkStats, RefreshStats)."""
    from rag_assets.customers import identity_linking, profile_refresh  # lazy: CLI start-up

    link, refresh = identity_linking.LinkStats(), profile_refresh.RefreshStats()
    for step in (lambda cur: identity_linking.link_batch(cur, link),
                 lambda cur: profile_refresh.refresh_batch(cur, refresh)):
        while True:
            with postgres.transaction() as cur:
                if step(cur) == 0:
                    break
    return link, refresh


def _replay(args, postgres, kafka, out: TextIO) -> int:
    from rag_assets.customers.assets import ensure_customer_schema
    from rag_assets.customers.dead_letter_replay import REPLAYABLE_SOURCES, replay_dead_letters

    if args.source not in REPLAYABLE_SOURCES:
        print(f"replay needs --source, one of: {', '.join(REPLAYABLE_SOURCES)}", file=sys.stderr)
        return 2
    with postgres.transaction() as cur:
        ensure_customer_schema(cur, postgres)
        report = replay_dead_letters(cur, args.source, kafka=kafka, limit=args.limit)
    # The replayed changes are queued for the identity graph; take them through to profiles
    # now, as the next customers_cdc run would.
    link, refresh = link_and_refresh(postgres)
    summary = {**report.as_dict(), "records_linked": link.records_linked,
               "profiles_written": refresh.profiles_written,
               "profiles_removed": refresh.profiles_removed}
    if args.json:
        print(json.dumps(summary, indent=2), file=out)
    else:
        print(f"{report.pending} pending, {report.applied} replayed "
              f"({', '.join(f'{k} {v}' for k, v in sorted(report.outcomes.items())) or 'none'}), "
              f"{report.still_failing} still failing; {link.records_linked} record(s) relinked, "
              f"{refresh.profiles_written} profile(s) written", file=out)
        for reason, count in report.reasons.most_common():
            print(f"  still failing ({count}): {reason}", file=out)
    return 0 if report.still_failing == 0 else 1
