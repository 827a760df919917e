"""`rag-assets context` and `rag-assets retrieval-serve`: retrieval from the command line.

    rag-assets context --customer REF --question TEXT [--k N] [--mode hybrid|vector|text|rrf]
                       [--doc-key KEY ...] [--answer] [--json]
    rag-assets retrieval-serve [--host 127.0.0.1] [--port 8090]

Exit status: 0 on success (also when no customer matched: the bundle says so), 2 for invalid
input. Connection settings come from the environment (`eval "$(rag-assets infra env)"`);
unset ones fall back to the local services.
"""

from __future__ import annotations

import argparse
import json
import sys

from rag_assets.knowledge.search import SearchMode
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


def _use_local_services_by_default() -> None:
    try:
        from rag_assets.cli import use_local_services_by_default
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
    from rag_assets.retrieval.http import serve

    serve(service_from_env(), args.host, args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m rag_assets.retrieval.cli context ...`)."""
    parser = argparse.ArgumentParser(prog="rag-assets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    context = commands.add_parser("context", help="the context bundle for a customer and question")
    add_context_arguments(context)
    context.set_defaults(handler=run_context_command)
    serve = commands.add_parser("retrieval-serve", help="serve retrieval over HTTP/JSON")
    add_serve_arguments(serve)
    serve.set_defaults(handler=run_serve_command)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
