"""`rag-assets context`, `retrieval-serve` and `retrieval-clients`: retrieval from the command line.

    rag-assets context --customer REF --question TEXT [--k N] [--mode hybrid|vector|text|rrf]
                       [--doc-key KEY ...] [--answer] [--json]
    rag-assets retrieval-serve [--host 127.0.0.1] [--port 8090] [--tls-cert F --tls-key F]
                               [--insecure-no-auth]
    rag-assets retrieval-clients add NAME | revoke NAME | list

Exit status: 0 on success (also when no customer matched: the bundle says so), 2 for invalid
input or settings the endpoint refuses. Connection settings come from the environment
(`eval "$(rag-assets infra env)"`); unset ones fall back to the local services.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from rag_assets.knowledge.search import SearchMode
from rag_assets.retrieval.access import INSECURE_NO_AUTH_FLAG
from rag_assets.retrieval.context import DEFAULT_K, InvalidRequest, validate_request


def add_context_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--customer", required=True,
                        help="customer id, email, phone, loyalty number or record (system:pk)")
    parser.add_argument("--question", required=True, help="the user's question")
    parser.add_argument("--k", type=int, default=DEFAULT_K, help="chunks to return (1-50)")
    parser.add_argument("--mode", default=SearchMode.HYBRID.value,
                        choices=[mode.value for mode in SearchMode],
                        help="search mode (default hybrid)")
    parser.add_argument("--doc-key", action="append", dest="doc_keys", default=None,
                        help="only search these document keys (repeatable)")
    parser.add_argument("--no-personalise", action="store_false", dest="personalise",
                        help="rank without preferring what applies to the customer's profile")
    parser.add_argument("--answer", action="store_true",
                        help="also generate an answer through Bedrock (BEDROCK_LLM_MODEL_ID)")
    parser.add_argument("--json", action="store_true", help="print the bundle as JSON")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--tls-cert", default=os.environ.get("RAG_RETRIEVAL_TLS_CERT"),
                        help="PEM certificate: serve HTTPS (default RAG_RETRIEVAL_TLS_CERT)")
    parser.add_argument("--tls-key", default=os.environ.get("RAG_RETRIEVAL_TLS_KEY"),
                        help="its private key (default RAG_RETRIEVAL_TLS_KEY)")
    parser.add_argument(INSECURE_NO_AUTH_FLAG, dest="insecure_no_auth", action="store_true",
                        help="serve without client tokens: only on a loopback --host, for "
                             "local development")


def add_retrieval_parsers(commands) -> None:
    """`context`, `retrieval-serve` and `retrieval-clients` on a subparsers object."""
    context = commands.add_parser("context", help="the context bundle for a customer and question")
    add_context_arguments(context)
    context.set_defaults(handler=run_context_command)
    serve = commands.add_parser("retrieval-serve", help="serve retrieval over HTTP/JSON")
    add_serve_arguments(serve)
    serve.set_defaults(handler=run_serve_command)
    clients = commands.add_parser("retrieval-clients",
                                  help="add, revoke or list the endpoint's clients")
    actions = clients.add_subparsers(dest="action", required=True)
    for action, text in (("add", "add a client and print its token (shown once)"),
                         ("revoke", "revoke a client's token"), ("list", "list the clients")):
        parser = actions.add_parser(action, help=text)
        if action != "list":
            parser.add_argument("name")
    clients.set_defaults(handler=run_clients_command)


def _use_local_services_by_default() -> None:
    try:
        from infra.settings import use_local_services_by_default
    except ImportError:  # infra not installed: rely on the environment alone
        return
    use_local_services_by_default()


def _print_text(bundle: dict) -> None:
    customer = bundle["customer"]
    if customer is None:
        print("Customer: no single customer matches this reference")
    else:
        print(f"Customer: {customer['customer_id']} (profile v{customer['provenance']['profile_version']},"
              f" {customer['age_seconds']:.0f} s old)")
        golden = customer["profile"].get("golden") or {}
        for name, field in sorted(golden.items()):
            value = field.get("value") if isinstance(field, dict) else field
            if value not in (None, "", []):
                print(f"  {name}: {value}")
    print(f"\nTop {len(bundle['chunks'])} chunks ({bundle['mode']}):")
    for chunk in bundle["chunks"]:
        p = chunk["provenance"]
        print(f"[{chunk['rank']}] {p['doc_key']}#{p['chunk_no']} @ {p['doc_version']} "
              f"(run {p['run_id'][:8]}, {chunk['age_seconds']:.0f} s old, score {chunk['score']})")
        if chunk["heading"]:
            print(f"    {chunk['heading']}")
        print(f"    {chunk['text'][:300]}")
    if bundle.get("answer"):
        print(f"\nAnswer ({bundle['answer']['model_id']}):\n{bundle['answer']['text']}")
    print(f"\n({bundle['timings_ms'].get('total', 0):.0f} ms)")


def run_context_command(args: argparse.Namespace) -> int:
    try:
        request = validate_request(args.customer, args.question, args.k, args.mode,
                                   args.doc_keys, args.answer, args.personalise)
    except InvalidRequest as error:
        print(f"invalid input: {error}", file=sys.stderr)
        return 2
    _use_local_services_by_default()
    from rag_assets.retrieval.context import service_from_env

    try:
        bundle = service_from_env().context_for(request)
    except InvalidRequest as error:
        print(f"invalid input: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(bundle, indent=2, default=str))
    else:
        _print_text(bundle)
    return 0


def run_serve_command(args: argparse.Namespace) -> int:
    _use_local_services_by_default()
    from rag_assets.retrieval.context import service_from_env
    from rag_assets.retrieval.http import EndpointRefused, serve

    try:
        serve(service_from_env(), args.host, args.port, args.insecure_no_auth, args.tls_cert,
              args.tls_key)
    except EndpointRefused as refused:
        print(f"retrieval-serve: {refused}", file=sys.stderr)
        return 2
    return 0


def run_clients_command(args: argparse.Namespace, postgres=None, out=None) -> int:
    from rag_assets.retrieval.clients import (
        ClientError,
        add_client,
        ensure_retrieval_schema,
        list_clients,
        revoke_client,
    )

    out = out or sys.stdout
    if postgres is None:
        _use_local_services_by_default()
        from resources.defaults import resource_from_environment

        postgres = resource_from_environment("postgres")
    try:
        with postgres.transaction() as cur:
            ensure_retrieval_schema(cur, postgres.db_schema)
            if args.action == "add":
                print(add_client(cur, args.name), file=out)
                print(f"client {args.name} added; the token above is shown once: give it to "
                      "the client, it is not stored", file=sys.stderr)
            elif args.action == "revoke":
                revoke_client(cur, args.name)
                print(f"client {args.name} revoked (running servers refuse it within seconds)",
                      file=out)
            else:
                for name, created, revoked in list_clients(cur):
                    print(f"{name}\tadded {created}\t" + (f"revoked {revoked}" if revoked
                                                          else "active"), file=out)
    except ClientError as error:
        print(f"retrieval-clients: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m rag_assets.retrieval.cli context ...`)."""
    parser = argparse.ArgumentParser(prog="rag-assets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    add_retrieval_parsers(commands)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
