"""Does retrieval find the right passage? hit@1, hit@5, MRR and nDCG@10 per search mode.

    apt-get install -y python3-doc debian-faq     # the labelled corpora (Debian packages)
    .venv/bin/python bench/retrieval_quality.py [--corpus faq|demo|all] [--modes a,b,...]
                                                [--embedder local-bge-small-onnx]

Corpora (rag_assets/retrieval/evaluation.py):

* `faq` — the Python FAQ (python3-doc's reStructuredText sources) and the Debian FAQ
  (debian-faq's text edition), indexed together: every FAQ entry's answer passage is one document
  (the question itself left out) and its question is the labelled query. Nobody on this team
  wrote these questions or passages.
* `demo` — the demo airline's documents with questions this project wrote
  (rag_assets/retrieval/demo_questions.py): shares our wording, so read it as a regression check.

Each corpus goes through the real path: uploaded to the local S3 (SeaweedFS) → the S3 listing
sensor's tick → the `documents` + `document_chunks` assets with the real offline embedder (MiniLM
by default, `--embedder` another backend)
→ LanceDB → `RetrievalService.context` (k=10), on a bucket, schema and LanceDB directory of its
own (removed afterwards). Needs the local services (`rag-assets infra up`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

K = 10


def upload_and_index(resources: dict, documents: dict[str, str]) -> float:
    """Put the documents under the knowledge prefix, then tick the S3 sensor and run the
    `documents` + `document_chunks` run it requests until it requests none; returns the seconds
    from the first tick to the last run's end."""
    from dagster import DagsterInstance, materialize

    from rag_assets.knowledge.assets import document_chunks, documents as documents_asset
    from sensors.s3_documents import S3_LISTING, plan_listing_tick

    s3, postgres = resources["s3"], resources["postgres"]
    client = s3.get_client()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: client.put_object(
            Bucket=s3.knowledge_bucket, Key=s3.knowledge_prefix + item[0],
            Body=item[1].encode("utf-8")), documents.items()))
    instance = DagsterInstance.ephemeral()
    start = time.perf_counter()
    cursor = None
    while True:  # the sensor bounds the documents of one run
        tick = plan_listing_tick(S3_LISTING, cursor, s3, postgres, instance)
        cursor = tick.cursor
        if not tick.run_requests:
            return time.perf_counter() - start
        (request,) = tick.run_requests
        result = materialize([documents_asset, document_chunks], resources=resources,
                             run_config=request.run_config, instance=instance)
        if not result.success:
            raise RuntimeError("the documents/document_chunks run failed")


class IndexedCorpus:
    """A labelled corpus uploaded to its own bucket and indexed by the knowledge assets."""

    def __init__(self, corpus, env: dict, embedder_resource) -> None:
        from resources.kafka import kafka_from_env
        from resources.lancedb import LanceDBResource
        from resources.postgres import PostgresResource
        from resources.s3 import S3Storage

        tag = uuid.uuid4().hex[:8]
        self.corpus = corpus
        self.bucket = f"bench-quality-{tag}"
        self.s3 = S3Storage(endpoint_url=env["S3_ENDPOINT_URL"], region_name=env["AWS_REGION"],
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                            knowledge_bucket=self.bucket, lake_bucket=self.bucket)
        self.postgres = PostgresResource(host=env["PGHOST"], port=int(env["PGPORT"]),
                                         user=env["PGUSER"], password=env["PGPASSWORD"],
                                         database=env["PGDATABASE"],
                                         db_schema=f"bench_quality_{tag}")
        self.lance_dir = tempfile.mkdtemp(prefix="bench-quality-")
        self.resources = {"s3": self.s3, "postgres": self.postgres,
                          "lancedb": LanceDBResource(uri=self.lance_dir),
                          "kafka": kafka_from_env(env=env),
                          "embedder": embedder_resource}
        self.client = self.s3.get_client()
        self.index_seconds = 0.0
        self.chunks = 0

    def index(self) -> None:
        self.client.create_bucket(Bucket=self.bucket)
        self.index_seconds = upload_and_index(self.resources, self.corpus.documents)

    def close(self) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
            self.client.delete_bucket(Bucket=self.bucket)
        except self.client.exceptions.NoSuchBucket:
            pass
        with self.postgres.transaction() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{self.postgres.db_schema}" CASCADE')
        shutil.rmtree(self.lance_dir, ignore_errors=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(service, corpus, prefix: str, modes: list[str], customer: str):
    """{mode: (Scores, per-source Scores, search ms list)} over the corpus's questions."""
    from rag_assets.retrieval.evaluation import evaluate, score_ranks

    results = {}
    for mode in modes:
        timings: list[float] = []

        def ranked(question: str, mode: str = mode) -> list[str]:
            bundle = service.context(customer, question, K, mode)
            timings.append(bundle["timings_ms"]["search"])
            return [chunk["provenance"]["doc_key"].removeprefix(prefix)
                    for chunk in bundle["chunks"]]

        scores, ranks = evaluate(ranked, corpus.questions)
        by_source = {}
        sources = {q.doc_key.split("/")[0] for q in corpus.questions}
        for source in sorted(sources if all(s.endswith("-faq") for s in sources) else ()):
            picked = [r for q, r in zip(corpus.questions, ranks)
                      if q.doc_key.split("/")[0] == source]
            by_source[source] = score_ranks(picked)
        results[mode] = (scores, by_source, timings)
    return results


def measure_personalised(service, prefix: str, modes: list[str]) -> dict:
    """{(mode, personalised): Scores} on the demo questions whose answer depends on the asker."""
    from rag_assets.retrieval.context import validate_request
    from rag_assets.retrieval.demo_questions import BUSY_PROFILE, PERSONAL_QUESTIONS, demo_corpus
    from rag_assets.retrieval.evaluation import answer_rank, score_ranks
    from rag_assets.retrieval.personalise import profile_preferences

    results = {}
    for mode in modes:
        for personalised in (False, True):
            ranks = []
            for question, profile, document in PERSONAL_QUESTIONS:
                request = validate_request("nobody@example.org", question, K, mode)
                preferences = profile_preferences(profile) if personalised else []
                hits = service.search(request, preferences)
                ranks.append(answer_rank([h.doc_key.removeprefix(prefix) for h in hits], document))
            results[(mode, personalised)] = score_ranks(ranks)
    # The general questions asked by a customer with a tier, a trip and open tickets: the
    # preference must not cost them anything.
    busy = profile_preferences(BUSY_PROFILE)
    for mode in modes:
        ranks = []
        for item in demo_corpus().questions:
            hits = service.search(validate_request("nobody@example.org", item.question, K, mode),
                                  busy)
            ranks.append(answer_rank([h.doc_key.removeprefix(prefix) for h in hits], item.doc_key))
        results[(mode, "general questions, busy profile")] = score_ranks(ranks)
    return results


def load_corpus(name: str):
    from rag_assets.retrieval import evaluation

    if name == "faq":
        return evaluation.merged_corpus("faq", [evaluation.python_faq_corpus(),
                                                evaluation.debian_faq_corpus()])
    from rag_assets.retrieval.demo_questions import demo_corpus
    return demo_corpus()


def report(indexed: IndexedCorpus, results: dict, embedder) -> None:
    corpus = indexed.corpus
    size_kb = sum(len(body.encode()) for body in corpus.documents.values()) / 1024
    print(f"\nretrieval_quality — corpus {corpus.name!r}: {len(corpus.documents)} documents "
          f"({size_kb:,.0f} KB), {indexed.chunks} chunks, {len(corpus.questions)} questions")
    print(f"  source: {corpus.source}")
    print(f"  conditions: S3 → sensor tick → documents/document_chunks assets ({indexed.index_seconds:.1f} s) "
          f"→ LanceDB (as written, not compacted) → RetrievalService.context(k={K}); embedder "
          f"{embedder.model_id}; {os.cpu_count()} CPUs shared with other work")
    print(f"  {'mode':<22} {'hit@1':>6} {'hit@5':>6} {'MRR':>6} {'nDCG@10':>8}   search p50/p95 ms")
    for mode, (scores, by_source, timings) in results.items():
        print(f"  {mode:<22} {scores.hit_at_1:6.3f} {scores.hit_at_5:6.3f} {scores.mrr:6.3f} "
              f"{scores.ndcg_at_10:8.3f}   {statistics.median(timings):5.1f} / "
              f"{percentile(timings, 0.95):5.1f}")
        if len(by_source) > 1:
            for source, part in by_source.items():
                print(f"    {source:<20} {part.hit_at_1:6.3f} {part.hit_at_5:6.3f} {part.mrr:6.3f} "
                      f"{part.ndcg_at_10:8.3f}   ({part.questions} questions)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=("faq", "demo", "all"), default="all")
    parser.add_argument("--modes", default=None,
                        help="comma-separated search modes (default: every SearchMode)")
    parser.add_argument("--embedder", default=None,
                        help="an EMBEDDER_BACKEND value, e.g. local-bge-small-onnx (default: the "
                             "product's default)")
    args = parser.parse_args()

    from infra.settings import InfraSettings, connection_env
    from rag_assets.knowledge.search import SearchMode
    from rag_assets.retrieval.context import RetrievalService
    from resources.embedder import EmbedderResource

    modes = args.modes.split(",") if args.modes else [mode.value for mode in SearchMode]
    env = connection_env(InfraSettings.from_env())
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    embedder_resource = EmbedderResource(**({"backend": args.embedder} if args.embedder else {}))
    embedder = embedder_resource.get_embedder()
    names = ["faq", "demo"] if args.corpus == "all" else [args.corpus]
    for name in names:
        indexed = IndexedCorpus(load_corpus(name), env, embedder_resource)
        try:
            indexed.index()
            service = RetrievalService(indexed.postgres, indexed.resources["lancedb"], embedder)
            indexed.chunks = service.table().count_rows()
            indexed_docs = {row["doc_key"] for row in service.table().search().select(
                ["doc_key"]).limit(None).to_list()}
            assert len(indexed_docs) == len(indexed.corpus.documents), "documents not indexed"
            results = measure(service, indexed.corpus, indexed.s3.knowledge_prefix, modes,
                              customer="nobody@example.org")
            personal = (measure_personalised(service, indexed.s3.knowledge_prefix, modes)
                        if name == "demo" else {})
        finally:
            indexed.close()
        report(indexed, results, embedder)
        if personal:
            print("  profile-aware: questions whose answer depends on the customer's tier or trip "
                  "(rag_assets/retrieval/demo_questions.py PERSONAL_QUESTIONS, 20 questions)")
            for (mode, personalised), scores in personal.items():
                label = f"{mode} " + (personalised if isinstance(personalised, str) else
                                      "with profile" if personalised else "without profile")
                print(f"  {label:<44} {scores.hit_at_1:6.3f} {scores.hit_at_5:6.3f} "
                      f"{scores.mrr:6.3f} {scores.ndcg_at_10:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
