"""`rag-assets erase`: the right to be forgotten on the command line.

    rag-assets erase --customer REF [--yes] [--request-id ID] [--json] [--pg-schema S]

Without `--yes` it is a dry run: it shows what would be erased. With it, the customer is erased
everywhere (`erasure.erase_customer`). The deployment's PostgreSQL and S3 come from the
environment (`resources.defaults`): that wiring is the command line's, not the domain's, which
is why it lives here (the top layer of docs/architecture.md) and not in `erasure.py`.

Exit status: 0 erased (or a dry run found a customer), 1 nothing matched or the reference is
ambiguous, 2 an invalid reference. Nothing printed holds a reference or an identifier besides
the customer id the caller asked about.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from rag_assets.customers.lookup import InvalidReference
from rag_assets.privacy.erasure import erase_customer
from rag_assets.privacy.request_log import AMBIGUOUS, ensure_erasure_schema
from rag_assets.privacy.resolution import load_target

AMBIGUOUS_MESSAGE = "the reference matches more than one customer: give a customer id"


def add_erase_parser(commands) -> None:
    """Add `rag-assets erase --customer REF [--yes] [--request-id ID] [--json]`."""
    erase = commands.add_parser(
        "erase", help="erase a customer everywhere (right to be forgotten)",
        description="Erase the customer a reference points to (customer id, record such as "
                    "system:pk, email, loyalty number or phone) from source records, identity "
                    "graph, profiles, feedback turns, the conversation lake and future "
                    "fine-tuning exports. Without --yes, shows what would be erased.")
    erase.add_argument("--customer", required=True, help="customer reference")
    erase.add_argument("--yes", action="store_true", help="really erase (otherwise a dry run)")
    erase.add_argument("--request-id", default=None, help="idempotency key (default: a new id)")
    erase.add_argument("--json", action="store_true", help="machine-readable output")
    erase.add_argument("--pg-schema", default=None,
                       help="PostgreSQL schema (default: RAG_PG_SCHEMA, else rag)")
    erase.set_defaults(handler=erase_cli)


def deployment_resources(args: argparse.Namespace, postgres=None, s3=None) -> tuple:
    """The PostgreSQL and S3 resources to erase through: the given ones, else the
    deployment's from the environment (`--pg-schema` overriding its schema)."""
    if postgres is not None:
        return postgres, s3
    from resources.defaults import resource_from_environment  # loads Dagster's resources

    postgres = resource_from_environment("postgres")
    if getattr(args, "pg_schema", None):
        postgres = postgres.model_copy(update={"db_schema": args.pg_schema})
    return postgres, s3 or resource_from_environment("s3")


def erase_cli(args: argparse.Namespace, postgres=None, s3=None, out: TextIO | None = None) -> int:
    """0 erased (or dry run found a customer), 1 nothing / ambiguous, 2 invalid reference."""
    out = out or sys.stdout
    postgres, s3 = deployment_resources(args, postgres, s3)
    try:
        if not args.yes:
            return _dry_run(args, postgres, out)
        result = erase_customer(postgres, s3, args.customer, args.request_id, "cli")
    except InvalidReference as error:
        print(f"invalid reference: {error}", file=sys.stderr)
        return 2
    if result.status == AMBIGUOUS:
        print(AMBIGUOUS_MESSAGE, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.summary(), indent=2, sort_keys=True), file=out)
    else:
        print(f"erasure {result.request_id}: {result.status}; "
              + ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())), file=out)
    return 0 if result.customer_found or result.counts.get("feedback_turns_deleted") else 1


def _dry_run(args: argparse.Namespace, postgres, out: TextIO) -> int:
    with postgres.transaction() as cur:
        ensure_erasure_schema(cur, postgres.db_schema)
        target = load_target(cur, args.customer)
    if target is None:
        print(AMBIGUOUS_MESSAGE, file=sys.stderr)
        return 1
    plan = {"customer_found": target.customer_id is not None,
            "customer_id": target.customer_id, "records": len(target.record_keys),
            "identifiers": len(target.identifiers), "references": len(target.refs)}
    print(json.dumps(plan) if args.json else
          f"dry run: would erase customer {target.customer_id or '(none)'} — "
          f"{plan['records']} record(s), {plan['identifiers']} identifier(s), feedback "
          f"under {plan['references']} reference(s). Add --yes to erase.", file=out)
    return 0 if target.customer_id else 1
