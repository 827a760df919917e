"""Embedding throughput of the offline all-MiniLM-L6-v2 (numpy) for 256-token chunks, beside the
model's FLOPs per chunk and this machine's measured float32 matmul GFLOPS.

    .venv/bin/python bench/embed_throughput.py [--chunks 32] [--batch-size 4]

FLOPs are counted for the encoder's matrix products (2 FLOPs per multiply-add):
per layer 8·n·H² (Q, K, V, output projections) + 4·n²·H (scores and weighted sum) + 4·n·H·F
(feed-forward), n = 256 tokens, H = 384, F = 1536, 6 layers. Layer norms, GELU, softmax and
the embedding lookup are left out (they are < 2 % of the total).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag_assets.knowledge.embedding import MiniLMEmbedder  # noqa: E402

WORDS = ("passengers may bring one cabin bag of up to eight kilograms refund voucher delay "
         "compensation loyalty members lounge access boarding gate passport check-in airport "
         "partner airline fare rules infant seat upgrade meal transfer within hours").split()


def encoder_flops(tokens: int, hidden: int = 384, ffn: int = 1536, layers: int = 6) -> float:
    n, h, f = tokens, hidden, ffn
    return layers * (8 * n * h * h + 4 * n * n * h + 4 * n * h * f)


def text_of_tokens(embedder: MiniLMEmbedder, tokens: int, rng: random.Random) -> str:
    """A text of exactly `tokens` word pieces including [CLS] and [SEP]."""
    words: list[str] = []
    while embedder.count_tokens(" ".join(words)) < tokens - 2:
        words.append(rng.choice(WORDS))
    while embedder.count_tokens(" ".join(words)) > tokens - 2:
        words.pop()
    return " ".join(words)


def matmul_gflops(m: int, k: int, n: int, seconds: float = 2.0) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    a @ b  # warm-up
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        runs += 1
    return 2 * m * k * n * runs / (time.perf_counter() - start) / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=256)
    args = parser.parse_args()

    embedder = MiniLMEmbedder(batch_size=args.batch_size)
    rng = random.Random(7)
    texts = [text_of_tokens(embedder, args.tokens, rng) for _ in range(args.chunks)]
    lengths = {embedder.count_tokens(t) + 2 for t in texts}
    embedder.embed(texts[:2])  # warm-up
    start = time.perf_counter()
    vectors = embedder.embed(texts)
    elapsed = time.perf_counter() - start
    assert vectors.shape == (args.chunks, embedder.dimension)

    flops = encoder_flops(args.tokens)
    chunks_per_s = args.chunks / elapsed
    square = matmul_gflops(1024, 1024, 1024)
    ffn_shape = matmul_gflops(args.batch_size * args.tokens, 384, 1536)
    achieved = chunks_per_s * flops / 1e9

    print("embed_throughput — offline all-MiniLM-L6-v2 (numpy, float32)")
    print(f"  conditions: {args.chunks} chunks of {sorted(lengths)} tokens (incl. [CLS]/[SEP]), "
          f"batch size {args.batch_size}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"numpy {np.__version__}, other work may share the machine")
    print(f"  throughput:            {chunks_per_s:8.2f} chunks/s  ({elapsed / args.chunks * 1000:.1f} ms/chunk)")
    print(f"  model FLOPs per chunk: {flops / 1e9:8.3f} GFLOP  (encoder matmuls, {args.tokens} tokens)")
    print(f"  achieved:              {achieved:8.2f} GFLOPS")
    print(f"  matmul 1024³ float32:  {square:8.2f} GFLOPS")
    print(f"  matmul {args.batch_size * args.tokens}x384x1536:    {ffn_shape:8.2f} GFLOPS (the feed-forward shape)")
    print(f"  efficiency:            {achieved / square:8.1%} of the 1024³ matmul rate")
    print(f"  ceiling at that rate:  {square * 1e9 / flops:8.2f} chunks/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
