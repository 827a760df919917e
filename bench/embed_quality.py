"""How far the faster offline embedders move from the float32 vectors of all-MiniLM-L6-v2.

    .venv/bin/python bench/embed_quality.py [--chunks 2000] [--reference-chunks 300]

Chunks are the demo knowledge base (`generate_documents` over several seeds), parsed and chunked
as the pipeline does; questions are 50 customer questions about the same policies. Printed per
backend: the sentence-transformers quickstart scores against the published ones, cosine to the
numpy reference over the first `--reference-chunks` chunks (min / mean), and retrieval agreement
with ONNX Runtime float32: the mean overlap of the top 10 chunks over all questions, and how
often the top chunk is the same.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag_assets.demo.documents import generate_documents  # noqa: E402
from rag_assets.knowledge.chunking import chunk_document  # noqa: E402
from rag_assets.knowledge.embedding import (  # noqa: E402
    QUICKSTART_SENTENCES,
    QUICKSTART_SIMILARITIES,
    MiniLMEmbedder,
    quickstart_pairs,
)
from rag_assets.knowledge.parsing import parse_document  # noqa: E402

QUESTIONS = [
    "How heavy can my cabin bag be?", "When do I get a refund for a cancelled flight?",
    "Can I bring my dog on board?", "Do Gold members get lounge access?",
    "What compensation is there for a long delay?", "Can I change my seat for free?",
    "How early does check-in open?", "What is the fee for excess baggage?",
    "How many checked bags are included in my fare?", "Can I take a stroller for my baby?",
    "What happens if my bag is lost?", "How do I claim for a damaged suitcase?",
    "Can I get a refund on a non-refundable ticket?", "How long does a refund take?",
    "Can I check in online?", "When does the boarding gate close?",
    "Do I need a visa to transit?", "Is my passport valid for six months enough?",
    "Can I travel with a service animal?", "How do I book wheelchair assistance?",
    "Can an unaccompanied minor fly alone?", "How do I earn loyalty points?",
    "When do my miles expire?", "How do I upgrade with points?",
    "Will I get a meal voucher if my flight is delayed?",
    "Am I entitled to a hotel after a cancellation?",
    "Can I bring sports equipment like skis?", "Are power banks allowed in checked luggage?",
    "Can I carry liquids in my hand luggage?", "What size can my personal item be?",
    "Can I change the name on my booking?", "What does it cost to change my flight date?",
    "Can I travel while pregnant?", "Do infants need their own seat?",
    "How do I request a special meal?", "Can I pay for extra legroom?",
    "What if I miss my connecting flight?", "Can I bring a musical instrument into the cabin?",
    "How do I report a complaint?", "Is there wifi on board?",
    "Can I fly with medication and syringes?", "What ID do I need for a domestic flight?",
    "How do partner airline flights count for status?", "Can I transfer my points to family?",
    "What are the rules for travelling with a cat?", "Is there a fee for paying by card?",
    "Can I get compensation under EU 261?", "How do I add a checked bag after booking?",
    "What is the Silver tier baggage allowance?", "What if the airline changes my schedule?",
]


def demo_chunks(count: int, counter) -> list[str]:
    """Embedding texts of the demo knowledge base's chunks, seed after seed, `count` distinct."""
    texts: list[str] = []
    seen: set[str] = set()
    seed = 0
    while len(texts) < count:
        for document in generate_documents(seed):
            parsed = parse_document(document.key, document.body())
            for chunk in chunk_document(parsed, count_tokens=counter):
                if chunk.embedding_text not in seen:
                    seen.add(chunk.embedding_text)
                    texts.append(chunk.embedding_text)
        seed += 1
    return texts[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--reference-chunks", type=int, default=300)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    from rag_assets.knowledge.onnx_embedding import (
        OnnxMiniLMEmbedder,
        OpenVinoMiniLMEmbedder,
        openvino_available,
    )

    reference = MiniLMEmbedder()
    backends: dict[str, object] = {
        "onnx fp32": OnnxMiniLMEmbedder("fp32"),
        "onnx int8": OnnxMiniLMEmbedder("int8"),
    }
    if openvino_available():
        backends["openvino f32"] = OpenVinoMiniLMEmbedder("f32")
        backends["openvino bf16"] = OpenVinoMiniLMEmbedder("bf16")

    texts = demo_chunks(args.chunks, reference.count_tokens)
    tokens = [reference.count_tokens(t) + 2 for t in texts]
    expected = reference.embed(texts[: args.reference_chunks])
    chunk_vectors = {name: e.embed(texts) for name, e in backends.items()}
    question_vectors = {name: e.embed(QUESTIONS) for name, e in backends.items()}

    def top(name: str) -> np.ndarray:
        scores = question_vectors[name] @ chunk_vectors[name].T
        return np.argsort(-scores, axis=1)[:, : args.k]

    baseline = top("onnx fp32")
    print("embed_quality — offline all-MiniLM-L6-v2 against float32")
    print(f"  {len(texts)} demo chunks ({min(tokens)}-{max(tokens)} tokens, median "
          f"{int(np.median(tokens))}), {len(QUESTIONS)} questions, cosine to numpy over the first "
          f"{args.reference_chunks} chunks")
    quickstart = "quickstart scores (published 0.6660 0.1046 0.1411)"
    print(f"  {'backend':<14} {'model_id':<52} {quickstart:<52} "
          f"{'cos min':>9} {'cos mean':>9} {f'top-{args.k} overlap':>14} {'same top-1':>10}")
    for name, embedder in backends.items():
        scores = quickstart_pairs(embedder.embed(QUICKSTART_SENTENCES))
        cosines = (chunk_vectors[name][: args.reference_chunks] * expected).sum(axis=1)
        ranked = top(name)
        overlap = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ranked, baseline)])
        same_first = np.mean(ranked[:, 0] == baseline[:, 0])
        deltas = " ".join(f"{s:.4f}({s - p:+.4f})" for s, p in zip(scores, QUICKSTART_SIMILARITIES))
        print(f"  {name:<14} {embedder.model_id:<52} {deltas:<52} {cosines.min():9.6f} "
              f"{cosines.mean():9.6f} {overlap:14.3f} {same_first:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
