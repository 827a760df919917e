"""`rag-assets`: the project's command line.

    rag-assets infra up|down|status|env     local Kafka, S3 and PostgreSQL
    rag-assets dagster up|down              the Dagster UI and daemon (sensors running)
    rag-assets stream --source cdc|feedback|documents
                                            a source's streaming worker as a process (scale-out)
    rag-assets demo                         everything above plus demo data flowing; Ctrl-C stops
    rag-assets demo-data [--continuous]     write demo CDC events, documents and feedback
    rag-assets context --customer REF --question TEXT [--k N] [--json]
                                            the context bundle for a prompt
    rag-assets retrieval-serve [--port N]   the same over HTTP/JSON (needs a client token, below)
    rag-assets retrieval-clients add|revoke|list   the endpoint's clients (tokens kept hashed)
    rag-assets customer --ref REF [--json]  a customer's unified profile
    rag-assets dead-letters list|replay [--source S]
    rag-assets sources check [FILE]         validate a source catalogue (exit 2: file:line errors)
    rag-assets sources drop SYSTEM.TABLE --yes   remove the records of a table left out of it
    rag-assets erase --customer REF [--yes] the right to be forgotten (dry run without --yes)
"""

from __future__ import annotations

import argparse
import json
import sys

import importlib

from infra import services
from infra.dagster import DagsterService
from infra.settings import InfraSettings, StateDirError, connection_env, use_local_services_by_default
from sensors.mode import STREAM_SOURCES

# Sub-commands a domain defines, with the function of its module that adds their parsers. Only
# the module of the command asked for is imported: a look-up need not wait for the others'
# imports (retrieval's search stack, erasure's lake). Help and unknown commands load them all.
DOMAIN_COMMANDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("context", "retrieval-serve", "retrieval-clients"), "rag_assets.retrieval.cli:add_retrieval_parsers"),
    (("customer", "dead-letters"), "rag_assets.customers.cli_commands:add_parsers"),
    (("erase",), "rag_assets.privacy.cli_commands:add_erase_parser"),
    (("sources",), "rag_assets.catalogue.cli:add_sources_parser"),
)


def _infra(args: argparse.Namespace) -> int:
    settings = InfraSettings.from_env()
    if args.action == "up":
        started = services.up(settings)
        print(f"started: {', '.join(started) or 'nothing (all were running)'}")
        _print_status(settings)
    elif args.action == "down":
        stopped = [DagsterService(settings).name] if DagsterService(settings).down() else []
        stopped += services.down(settings)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    elif args.action == "status":
        return 0 if _print_status(settings) else 1
    elif args.action == "env":
        print(services.export_lines(settings))
    return 0


def _print_status(settings: InfraSettings) -> bool:
    env = connection_env(settings)
    where = {
        "postgres": f"postgresql://{env['PGUSER']}@{env['PGHOST']}:{env['PGPORT']}/{env['PGDATABASE']}",
        "s3": env["S3_ENDPOINT_URL"],
        "kafka": env["KAFKA_BOOTSTRAP_SERVERS"],
    }
    report = services.status(settings)
    for name, state in report.items():
        health = "healthy" if state["healthy"] else "down"
        print(f"  {name:<9} {health:<8} pid={state['pid'] or '-':<8} {where[name]}")
    print("  (connection variables: eval \"$(rag-assets infra env)\")")
    return all(state["healthy"] for state in report.values())


def _dagster(args: argparse.Namespace) -> int:
    service = DagsterService(InfraSettings.from_env())
    if args.action == "up":
        service.up()
        print(f"Dagster UI: {service.url}")
    else:
        service.down()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from rag_assets.demo.run import run_demo

    return run_demo(duration_s=args.duration)


def _demo_data(args: argparse.Namespace) -> int:
    use_local_services_by_default()
    from rag_assets.demo.publisher import publish_demo_data

    summary = publish_demo_data(
        continuous=args.continuous, rate=args.rate, duration_s=args.duration, seed=args.seed
    )
    print(json.dumps(summary, indent=2))
    return 0


def _stream(args: argparse.Namespace) -> int:
    # Imported here: the sensors load the whole Dagster wiring, which no other command needs.
    from sensors.stream_command import run_stream
    return run_stream(args)


def _add_domain_parsers(commands, argv: list[str] | None) -> None:
    asked = next((arg for arg in argv or [] if not arg.startswith("-")), None)
    wanted = [adder for names, adder in DOMAIN_COMMANDS if asked in names]
    for adder in wanted or [adder for _, adder in DOMAIN_COMMANDS]:
        module, function = adder.split(":")
        getattr(importlib.import_module(module), function)(commands)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with `argv`, only the domain parsers its command needs."""
    parser = argparse.ArgumentParser(prog="rag-assets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    infra = commands.add_parser("infra", help="local Kafka, S3 and PostgreSQL")
    infra.add_argument("action", choices=["up", "down", "status", "env"])
    infra.set_defaults(handler=_infra)

    dagster = commands.add_parser("dagster", help="the Dagster webserver and daemon")
    dagster.add_argument("action", choices=["up", "down"])
    dagster.set_defaults(handler=_dagster)

    demo = commands.add_parser("demo", help="services, Dagster UI and demo data; Ctrl-C stops")
    demo.add_argument("--duration", type=float, default=None,
                      help="stop after this many seconds (default: run until Ctrl-C)")
    demo.set_defaults(handler=_demo)

    data = commands.add_parser("demo-data", help="write demo CDC events, documents, feedback")
    data.add_argument("--continuous", action="store_true", help="keep producing changes")
    data.add_argument("--rate", type=float, default=2.0, help="changes per second when continuous")
    data.add_argument("--duration", type=float, default=None, help="seconds to run when continuous")
    data.add_argument("--seed", type=int, default=7)
    data.set_defaults(handler=_demo_data)

    stream = commands.add_parser(
        "stream", help="one source's streaming worker as a process of its own (scale-out)")
    stream.add_argument("--source", required=True, choices=STREAM_SOURCES)
    stream.set_defaults(handler=_stream)

    _add_domain_parsers(commands, argv)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        if args.command in ("customer", "dead-letters", "erase", "stream") or (
                args.command == "sources" and args.action == "drop"):
            use_local_services_by_default()
        return args.handler(args)
    except StateDirError as error:  # a setting to fix, not a bug: no traceback
        print(f"rag-assets {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
