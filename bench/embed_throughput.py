"""Embedding throughput of the offline all-MiniLM-L6-v2 for 256-token chunks — numpy, ONNX Runtime
fp32, ONNX Runtime int8 and OpenVINO bf16 side by side in one process — beside the model's FLOPs
per chunk and this machine's measured float32 matmul GFLOPS.

    .venv/bin/python bench/embed_throughput.py [--chunks 32] [--batch-size 4] [--rounds 3]

The backends are timed in interleaved rounds (numpy, fp32, int8, bf16, numpy, ...) so that load
from other work falls on all of them alike; the median round is reported, with the best, and the
ratios are of medians. The load average before and after is printed. The ONNX Runtime variants are
skipped when onnxruntime is not installed, OpenVINO when openvino is not (the model_id column
shows the precision OpenVINO chose: without bfloat16 support on the CPU it runs float32).

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
import statistics
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


def openvino_matmul_gflops(m: int, k: int, n: int, precision: str, seconds: float = 2.0) -> float:
    """An (m, k) @ (k, n) product with constant weights, compiled by OpenVINO's CPU plugin in
    `precision`: on AMX hardware bf16 is several times f32, which shows AMX is in use."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    a = ops.parameter([m, k], np.float32, name="a")
    product = ops.matmul(a, ops.constant(rng.standard_normal((k, n), dtype=np.float32)),
                         False, False)
    compiled = ov.Core().compile_model(ov.Model([product], [a]), "CPU", {
        "INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": 2, "NUM_STREAMS": 1})
    request = compiled.create_infer_request()
    x = rng.standard_normal((m, k), dtype=np.float32)
    request.infer([x])  # warm-up
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        request.infer([x])
        runs += 1
    return 2 * m * k * n * runs / (time.perf_counter() - start) / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--numpy-chunks", type=int, default=8,
                        help="chunks per numpy round (it is slow; the others use --chunks)")
    args = parser.parse_args()
    load_before = os.getloadavg()

    reference = MiniLMEmbedder(batch_size=args.batch_size)
    backends: dict[str, object] = {"numpy fp32": reference}
    try:
        from rag_assets.knowledge.onnx_embedding import (
            OnnxMiniLMEmbedder,
            OpenVinoMiniLMEmbedder,
            onnxruntime_available,
            openvino_available,
        )

        if onnxruntime_available():
            backends["onnx fp32"] = OnnxMiniLMEmbedder("fp32", batch_size=args.batch_size)
            backends["onnx int8"] = OnnxMiniLMEmbedder("int8", batch_size=args.batch_size)
        if openvino_available():
            backends["openvino bf16"] = OpenVinoMiniLMEmbedder("bf16", batch_size=args.batch_size)
    except ImportError:
        pass

    rng = random.Random(7)
    texts = [text_of_tokens(reference, args.tokens, rng) for _ in range(args.chunks)]
    lengths = {reference.count_tokens(t) + 2 for t in texts}
    expected = reference.embed(texts[: args.numpy_chunks])
    rates: dict[str, list[float]] = {name: [] for name in backends}
    closeness: dict[str, float] = {}
    for name, embedder in backends.items():
        vectors = embedder.embed(texts[: args.numpy_chunks])  # warm-up and a check
        assert vectors.shape == (args.numpy_chunks, embedder.dimension)
        closeness[name] = float((vectors * expected).sum(axis=1).min())
    for _ in range(args.rounds):
        for name, embedder in backends.items():
            count = args.numpy_chunks if name == "numpy fp32" else args.chunks
            start = time.perf_counter()
            embedder.embed(texts[:count])
            rates[name].append(count / (time.perf_counter() - start))

    flops = encoder_flops(args.tokens)
    square = matmul_gflops(1024, 1024, 1024)
    ffn_shape = matmul_gflops(args.batch_size * args.tokens, 384, 1536)
    openvino_ffn = {
        precision: openvino_matmul_gflops(args.batch_size * args.tokens, 384, 1536, precision)
        for precision in ("f32", "bf16")
    } if "openvino bf16" in backends else {}
    load_after = os.getloadavg()
    baseline = statistics.median(rates["numpy fp32"])

    print("embed_throughput — offline all-MiniLM-L6-v2, 256-token chunks")
    print(f"  conditions: {args.chunks} chunks of {sorted(lengths)} tokens (incl. [CLS]/[SEP]) "
          f"({args.numpy_chunks} for numpy), batch size {args.batch_size}, {args.rounds} interleaved "
          f"rounds, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"numpy {np.__version__}, other work may share the machine")
    print(f"  load average: before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"  {'backend':<13} {'model_id':<51} {'chunks/s':>9} {'best':>7} {'vs numpy':>9} "
          f"{'GFLOPS':>7} {'min cos to numpy':>17}")
    for name, embedder in backends.items():
        median = statistics.median(rates[name])
        print(f"  {name:<13} {embedder.model_id:<51} {median:9.2f} {max(rates[name]):7.2f} "
              f"{median / baseline:8.2f}x {median * flops / 1e9:7.1f} {closeness[name]:17.6f}")
    print(f"  model FLOPs per chunk: {flops / 1e9:8.3f} GFLOP  (encoder matmuls, {args.tokens} tokens)")
    print(f"  matmul 1024³ float32:  {square:8.2f} GFLOPS (numpy)")
    print(f"  matmul {args.batch_size * args.tokens}x384x1536:    {ffn_shape:8.2f} GFLOPS (the feed-forward shape)")
    for precision, rate in openvino_ffn.items():
        print(f"  matmul {args.batch_size * args.tokens}x384x1536:    {rate:8.2f} GFLOPS "
              f"(OpenVINO, {precision})")
    print(f"  fp32 ceiling at the 1024³ rate: {square * 1e9 / flops:8.2f} chunks/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
