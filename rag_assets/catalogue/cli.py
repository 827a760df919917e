"""`rag-assets sources check [FILE]`: validate a source catalogue before deploying it.

Exit status 0 with a summary of every table when the file is usable; 2 with one
`file:line: problem` per mistake when it is not.
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
    sources.add_argument("action", choices=["check"])
    sources.add_argument("file", nargs="?", default=None, help="the catalogue file to check")
    sources.set_defaults(handler=run_sources_command)


def run_sources_command(args: argparse.Namespace, out: TextIO | None = None,
                        err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
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
