"""`rag-assets sources check [FILE]`: validate a source catalogue before deploying it.
`rag-assets sources drop SYSTEM.TABLE --yes`: remove the stored records of a table that left
the catalogue (the deployment refuses to go on while they exist).

Exit status 0 with a summary of every table when the file is usable; 2 with one
`file:line: problem` per mistake when it is not (or a drop without --yes).
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from rag_assets.catalogue.active import CATALOGUE_ENV, catalogue_path
from rag_assets.catalogue.loader import CatalogueError, load_catalogue
from rag_assets.catalogue.model import Catalogue


def add_sources_parser(commands) -> None:
    sources = commands.add_parser(
        "sources", help="check the source catalogue",
        description="Validate a source catalogue file: the tables, their topics and what their "
                    f"columns mean (default: the file {CATALOGUE_ENV} names, else the demo's).")
    sources.add_argument("action", choices=["check", "drop"])
    sources.add_argument("file", nargs="?", default=None,
                         help="check: the catalogue file; drop: the table, SYSTEM.TABLE")
    sources.add_argument("--yes", action="store_true", help="drop: really remove the records")
    sources.set_defaults(handler=run_sources_command)


def run_sources_command(args: argparse.Namespace, out: TextIO | None = None,
                        err: TextIO | None = None, postgres=None) -> int:
    """Run `sources check` or `sources drop`; PostgreSQL defaults to the environment's."""
    out, err = out or sys.stdout, err or sys.stderr
    if args.action == "drop":
        return _drop(args, out, err, postgres)
    path = args.file or catalogue_path()
    try:
        catalogue = load_catalogue(path)
    except CatalogueError as error:
        print(error, file=err)
        print(f"{len(error.problems)} problem(s); the catalogue cannot be used", file=err)
        return 2
    print(describe(catalogue), file=out)
    return 0


def describe(catalogue: Catalogue) -> str:
    """One line per table: its name, role, topics and short reference."""
    lines = [f"{catalogue.path}: {len(catalogue.tables)} source table(s), valid"]
    for table in catalogue.tables:
        topics = ", ".join(table.topics) + (
            f"{', ' if table.topics else ''}/{table.topic_pattern}/" if table.topic_pattern else "")
        short = f", reference {table.short_reference}:<pk>" if table.short_reference else ""
        lines.append(f"  {table.name:<28} {table.profile.role:<10} topics {topics}{short}")
    if catalogue.cdc_topics:
        lines.append(f"  other topics matching /{catalogue.cdc_topics}/ are dead-lettered as "
                     "unknown tables")
    lines.append(f"  survivorship: priority {' > '.join(catalogue.survivorship.source_priority)}")
    lines.append(f"  documents: {catalogue.knowledge.prefix} "
                 f"({' '.join(catalogue.knowledge.document_types)}); "
                 f"feedback topic {catalogue.feedback_topic}")
    return "\n".join(lines)


def _drop(args: argparse.Namespace, out: TextIO, err: TextIO, postgres) -> int:
    system, _, table = (args.file or "").partition(".")
    if not system or not table or not args.yes:
        print("usage: rag-assets sources drop SYSTEM.TABLE --yes (removes every stored record "
              "of the table)", file=err)
        return 2
    from rag_assets.customers.assets import ensure_customer_schema
    from rag_assets.customers.catalogue_sync import drop_source
    from resources.defaults import resource_from_environment

    postgres = postgres or resource_from_environment("postgres")
    with postgres.transaction() as cur:
        ensure_customer_schema(cur, postgres)
        removed = drop_source(cur, system, table)
    print(f"{removed} record(s) of {system}.{table} removed; the identity graph and profiles "
          "let go of them at the next linking batch", file=out)
    return 0
