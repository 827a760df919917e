"""all-MiniLM-L6-v2 as an ONNX graph built from its weights, run by ONNX Runtime or OpenVINO.

The graph is written with `onnx.helper` straight from the packaged `model.safetensors` (no torch,
no download): embeddings, 6 encoder layers, mean pooling and L2 normalisation, with the same
arithmetic as `MiniLMEmbedder` (the numpy reference). Two variants run by ONNX Runtime:

* ``fp32`` — same vectors as the numpy model to ~1e-6, so it shares its `model_id` and chunks
  embedded by either need no re-embedding.
* ``int8`` — the encoder's MatMuls and Attention projections dynamically quantized
  (`quantize_dynamic`: int8 weights per output channel, activations quantized per tensor at run
  time). About twice as fast as fp32 here, but vectors move (cosine to the fp32 vector ~0.99, the
  published similarity scores by 0.004-0.026) and depend slightly on which texts share a batch,
  because the activation scale is taken over the whole batch. It therefore has a model_id of its
  own (`MINILM_INT8_MODEL_ID`): switching to it re-embeds the corpus.

`OpenVinoMiniLMEmbedder` compiles the same fp32 file with OpenVINO's CPU plugin. In ``bf16`` the
matrix products run in bfloat16 on AMX tiles (Sapphire Rapids and later), accumulating in float32:
~3.7x ONNX Runtime fp32 on 2 cores here, cosine to the fp32 vectors ≥ 0.99997, published scores
within 5e-4, vectors independent of the batch. Not identical, so it has its own model_id
(`MINILM_BF16_MODEL_ID`). ONNX Runtime has no bfloat16 arithmetic on x86 CPUs (its AMX kernels are
for int8 GEMM only), hence the second runtime.

The graph is built at first use into a cache directory (``RAG_MODEL_CACHE``, else
``~/.cache/rag-assets/``), in a file named after the weights' SHA-256 and `GRAPH_VERSION`, and
written atomically, so concurrent first uses cannot leave a half-written model behind.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag_assets.knowledge.embedding import (
    MINILM_MAX_TOKENS,
    MINILM_MODEL_ID,
    LocalMiniLM,
    MiniLMTokenizer,
    load_minilm_config,
    locate_minilm_model_dir,
    pad_batch,
)

logger = logging.getLogger(__name__)

MINILM_INT8_MODEL_ID = f"{MINILM_MODEL_ID}+onnx-int8"
MINILM_BF16_MODEL_ID = f"{MINILM_MODEL_ID}+openvino-bf16"
VARIANTS = ("fp32", "int8")
# Bump when the graph or the quantization settings change: the cached files are keyed by it.
GRAPH_VERSION = 1
OPSET = 17


def onnxruntime_available() -> bool:
    import importlib.util

    return all(
        importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime")
    )


def model_cache_dir() -> Path:
    configured = os.environ.get("RAG_MODEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "rag-assets"


def weights_digest(model_dir: Path) -> str:
    """SHA-256 of the weights and the config they are read with."""
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        with open(Path(model_dir) / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Graph construction
# --------------------------------------------------------------------------------------------


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.contrib_outputs: list[str] = []
        self._names: set[str] = set()

    def _unique(self, hint: str) -> str:
        name, suffix = hint, 1
        while name in self._names:
            suffix += 1
            name = f"{hint}_{suffix}"
        self._names.add(name)
        return name

    def constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self._unique(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], name: str, **attributes: Any) -> str:
        from onnx import helper

        output = self._unique(name)
        if attributes.get("domain") == "com.microsoft":
            # ONNX shape inference does not know contrib ops; the quantizer needs their types.
            self.contrib_outputs.append(output)
        self.nodes.append(
            helper.make_node(op_type, list(inputs), [output], name=output, **attributes)
        )
        return output


@dataclass(frozen=True)
class _Encoder:
    """The weights and shape of a BERT encoder, and the graph its ops are added to."""

    g: _GraphBuilder
    weights: dict[str, np.ndarray]
    heads: int
    eps: float

    def get(self, name: str) -> np.ndarray:
        return np.ascontiguousarray(self.weights[name], dtype=np.float32)

    def transposed(self, name: str) -> str:
        # PyTorch stores Linear weights as (out, in); MatMul wants (in, out).
        return self.g.constant(name, self.get(name).T)

    def layer_norm(self, x: str, prefix: str) -> str:
        return self.g.op(
            "LayerNormalization",
            [x, self.g.constant(f"{prefix}.weight", self.get(f"{prefix}.weight")),
             self.g.constant(f"{prefix}.bias", self.get(f"{prefix}.bias"))],
            f"{prefix}.out", axis=-1, epsilon=self.eps,
        )

    def skip_layer_norm(self, x: str, residual: str, bias_name: str, prefix: str) -> str:
        """LayerNorm(x + bias + residual) in one kernel."""
        return self.g.op(
            "SkipLayerNormalization",
            [x, residual, self.g.constant(f"{prefix}.weight", self.get(f"{prefix}.weight")),
             self.g.constant(f"{prefix}.bias", self.get(f"{prefix}.bias")),
             self.g.constant(bias_name, self.get(bias_name))],
            f"{prefix}.out", domain="com.microsoft", epsilon=self.eps,
        )


def _embeddings(enc: _Encoder) -> str:
    """Word + position (the first `length` rows) + token type 0 embeddings, then LayerNorm."""
    g, i64 = enc.g, lambda value: np.array(value, dtype=np.int64)
    words = g.op("Gather", [g.constant("word_embeddings", enc.get("embeddings.word_embeddings.weight")),
                            "input_ids"], "embeddings.words", axis=0)
    shape = g.op("Shape", ["input_ids"], "input_shape")
    length = g.op("Slice", [shape, g.constant("one", i64([1])), g.constant("two", i64([2]))],
                  "sequence_length")
    positions = g.op(
        "Slice",
        [g.constant("position_embeddings", enc.get("embeddings.position_embeddings.weight")),
         g.constant("zero", i64([0])), length],
        "embeddings.positions",
    )
    summed = g.op("Add", [words, positions], "embeddings.words_positions")
    summed = g.op("Add", [summed, g.constant(
        "token_type_embedding", enc.get("embeddings.token_type_embeddings.weight")[0])],
        "embeddings.sum")
    return enc.layer_norm(summed, "embeddings.LayerNorm")


def _encoder_layer(enc: _Encoder, x: str, p: str, mask_index: str) -> str:
    """One encoder layer in ONNX Runtime's contrib ops: Attention (Q, K, V projections, masked
    softmax and weighted sum in one kernel; it masks padding from the raw 0/1 mask itself),
    SkipLayerNormalization, BiasGelu."""
    g, names = enc.g, ("query", "key", "value")
    qkv_weight = np.concatenate([enc.get(f"{p}.attention.self.{n}.weight").T for n in names], axis=1)
    qkv_bias = np.concatenate([enc.get(f"{p}.attention.self.{n}.bias") for n in names])
    context = g.op(
        "Attention",
        [x, g.constant(f"{p}.attention.qkv.weight", qkv_weight),
         g.constant(f"{p}.attention.qkv.bias", qkv_bias), mask_index],
        f"{p}.attention.context", domain="com.microsoft", num_heads=enc.heads,
    )
    dense = f"{p}.attention.output.dense"
    projected = g.op("MatMul", [context, enc.transposed(f"{dense}.weight")], f"{dense}.matmul")
    x = enc.skip_layer_norm(projected, x, f"{dense}.bias", f"{p}.attention.output.LayerNorm")
    intermediate = f"{p}.intermediate.dense"
    gelu = g.op(
        "BiasGelu",
        [g.op("MatMul", [x, enc.transposed(f"{intermediate}.weight")], f"{intermediate}.matmul"),
         g.constant(f"{intermediate}.bias", enc.get(f"{intermediate}.bias"))],
        f"{p}.gelu", domain="com.microsoft",
    )
    output = f"{p}.output.dense"
    projected = g.op("MatMul", [gelu, enc.transposed(f"{output}.weight")], f"{output}.matmul")
    return enc.skip_layer_norm(projected, x, f"{output}.bias", f"{p}.output.LayerNorm")


def _mean_pooled_and_normalised(g: _GraphBuilder, x: str) -> None:
    """Mean pooling over real tokens, then L2 normalisation (the numpy model's clamps), as the
    graph's output `sentence_embedding`."""
    from onnx import TensorProto, helper

    f32, i64 = (lambda value: np.array(value, dtype=np.float32),
                lambda value: np.array(value, dtype=np.int64))
    mask = g.op("Cast", ["attention_mask"], "mask_float", to=TensorProto.FLOAT)
    mask_3d = g.op("Unsqueeze", [mask, g.constant("axis_2", i64([2]))], "mask_3d")
    axis_1 = g.constant("axis_1", i64([1]))
    summed = g.op("ReduceSum", [g.op("Mul", [x, mask_3d], "masked_hidden"), axis_1],
                  "pooled_sum", keepdims=0)
    counts = g.op("Max", [g.op("ReduceSum", [mask_3d, axis_1], "token_count", keepdims=0),
                          g.constant("count_floor", f32(1e-9))], "token_count_clamped")
    pooled = g.op("Div", [summed, counts], "pooled")
    norms = g.op("Max", [g.op("ReduceL2", [pooled], "norm", axes=[1], keepdims=1),
                         g.constant("norm_floor", f32(1e-12))], "norm_clamped")
    g.nodes.append(helper.make_node("Div", [pooled, norms], ["sentence_embedding"],
                                    name="sentence_embedding"))


def _model(g: _GraphBuilder, hidden: int):
    from onnx import TensorProto, helper

    def tokens(name: str):
        return helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])

    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2", [tokens("input_ids"), tokens("attention_mask")],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])],
        initializer=g.initializers,
        value_info=[helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
                    for name in g.contrib_outputs],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)],
        producer_name="rag-assets",
        doc_string=f"{MINILM_MODEL_ID} built from model.safetensors, graph version {GRAPH_VERSION}",
    )
    model.ir_version = 8  # readable by every onnxruntime that supports opset 17
    return model


def build_minilm_onnx(model_dir: Path, path: Path) -> None:
    """Write the fp32 ONNX graph of the model in `model_dir` to `path`: each encoder layer in
    ONNX Runtime's contrib ops (domain com.microsoft), which OpenVINO reads too."""
    import onnx
    from onnx import TensorProto
    from safetensors.numpy import load_file

    config = load_minilm_config(model_dir)
    g = _GraphBuilder()
    enc = _Encoder(g, load_file(str(Path(model_dir) / "model.safetensors")),
                   int(config["num_attention_heads"]), float(config["layer_norm_eps"]))
    x = _embeddings(enc)
    mask_index = g.op("Cast", ["attention_mask"], "mask_index", to=TensorProto.INT32)
    for index in range(int(config["num_hidden_layers"])):
        x = _encoder_layer(enc, x, f"encoder.layer.{index}", mask_index)
    _mean_pooled_and_normalised(g, x)
    model = _model(g, int(config["hidden_size"]))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def quantize_minilm_onnx(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic int8 quantization of the encoder's MatMuls (weights per output channel).

    MatMul and Attention (to QAttention: its Q/K/V projection) are quantized; the embedding table
    stays float32 (quantizing the Gather moves the vectors further for no speed), and so do the
    attention score/context products, which have no constant weight.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32_path),
        str(int8_path),
        op_types_to_quantize=["MatMul", "Attention"],
        per_channel=True,
        weight_type=QuantType.QInt8,
    )


def write_atomically(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f"{path.suffix}.tmp"
    )
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def ensure_onnx_model(
    model_dir: Path, variant: str = "fp32", cache_dir: Path | None = None
) -> Path:
    """The cached ONNX file of `variant`, built (and the fp32 one first, for int8) if missing."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown ONNX variant {variant!r}; expected one of {VARIANTS}")
    cache = Path(cache_dir) if cache_dir else model_cache_dir()
    stem = f"all-MiniLM-L6-v2-{weights_digest(model_dir)[:16]}-g{GRAPH_VERSION}"
    fp32_path = cache / f"{stem}-fp32.onnx"
    if not fp32_path.is_file():
        logger.info("Building the ONNX graph of %s into %s", MINILM_MODEL_ID, fp32_path)
        write_atomically(fp32_path, lambda target: build_minilm_onnx(model_dir, target))
    if variant == "fp32":
        return fp32_path
    int8_path = cache / f"{stem}-int8.onnx"
    if not int8_path.is_file():
        logger.info("Quantizing %s to int8 into %s", fp32_path.name, int8_path)
        write_atomically(int8_path, lambda target: quantize_minilm_onnx(fp32_path, target))
    return int8_path


# --------------------------------------------------------------------------------------------
# The embedder
# --------------------------------------------------------------------------------------------


class _MiniLMGraph(LocalMiniLM):
    """What the runners of the cached ONNX graph share: the model files, the tokenizer, the
    graph file of `variant` (built at first use) and the padding of a batch. A subclass runs the
    padded ids and mask in `_run`."""

    def __init__(
        self,
        variant: str,
        model_dir: Path | str | None,
        batch_size: int,
        max_tokens: int,
        cache_dir: Path | str | None,
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir else locate_minilm_model_dir()
        self.batch_size = batch_size
        config = load_minilm_config(self.model_dir)
        self._dimension = int(config["hidden_size"])
        self._tokenizer = MiniLMTokenizer(self.model_dir, max_tokens)
        self.onnx_path = ensure_onnx_model(
            self.model_dir, variant, Path(cache_dir) if cache_dir else None
        )

    def _embed_batch(self, token_ids: list[list[int]]) -> np.ndarray:
        ids, mask = pad_batch(token_ids)
        return self._run(ids, mask)

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def default_threads() -> int:
    """Two threads at most: more only contend with the other work on a small machine."""
    return min(os.cpu_count() or 1, 2)


def cpu_session(onnx_path: Path, intra_op_threads: int | None = None) -> Any:
    """An ONNX Runtime session on the CPU, sized for a small machine shared with other work."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Busy-waiting worker threads cost more than they save on a machine shared with other work.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


class OnnxMiniLMEmbedder(_MiniLMGraph):
    """all-MiniLM-L6-v2 through ONNX Runtime (CPU), fp32 or int8; the `Embedder` protocol."""

    def __init__(
        self,
        variant: str = "fp32",
        model_dir: Path | str | None = None,
        batch_size: int = 4,
        max_tokens: int = MINILM_MAX_TOKENS,
        cache_dir: Path | str | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        self.variant = variant
        super().__init__(variant, model_dir, batch_size, max_tokens, cache_dir)

        self._session = cpu_session(self.onnx_path, intra_op_threads)

    @property
    def model_id(self) -> str:
        return MINILM_MODEL_ID if self.variant == "fp32" else MINILM_INT8_MODEL_ID

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        (vectors,) = self._session.run(
            ["sentence_embedding"], {"input_ids": ids, "attention_mask": mask}
        )
        return vectors


# --------------------------------------------------------------------------------------------
# OpenVINO: the same graph in bfloat16 on AMX
# --------------------------------------------------------------------------------------------


def openvino_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "openvino"))


@functools.cache
def cpu_has_amx_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in AMX tiles (Linux: /proc/cpuinfo flags).

    Only there is OpenVINO's bfloat16 worth choosing by default: measured here, a feed-forward
    sized matmul ran at 584 GFLOPS in bf16 against 132 in f32.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return {"amx_bf16", "amx_tile"} <= flags
    except OSError:
        pass
    return False


class OpenVinoMiniLMEmbedder(_MiniLMGraph):
    """all-MiniLM-L6-v2's fp32 ONNX graph (the one `OnnxMiniLMEmbedder` runs) compiled by
    OpenVINO's CPU plugin; the `Embedder` protocol.

    ``bf16`` (the default): matrix products in bfloat16 on AMX tiles, accumulating in float32;
    layer norms, residual sums and the pooling stay float32. Vectors move slightly (cosine to
    the fp32 vector ≥ 0.99997 measured), so it has a model_id of its own
    (`MINILM_BF16_MODEL_ID`). ``f32`` runs the graph in float32 (same vectors as the numpy
    model, and its model_id). On a CPU without AMX ``bf16`` runs float32: the plugin would
    emulate bfloat16 on AVX-512, and there a text's vector depended on the batch it came in
    (up to 1e-3 apart, measured on a Xeon with AVX-512 and no AMX), so the same document
    could rank differently. The model_id follows the precision the plugin actually runs.
    """

    PRECISIONS = ("bf16", "f32")

    def __init__(
        self,
        precision: str = "bf16",
        model_dir: Path | str | None = None,
        batch_size: int = 4,
        max_tokens: int = MINILM_MAX_TOKENS,
        cache_dir: Path | str | None = None,
        threads: int | None = None,
    ) -> None:
        if precision not in self.PRECISIONS:
            raise ValueError(
                f"unknown OpenVINO precision {precision!r}; expected one of {self.PRECISIONS}"
            )
        import openvino as ov

        if precision == "bf16" and not cpu_has_amx_bf16():
            precision = "f32"
        super().__init__("fp32", model_dir, batch_size, max_tokens, cache_dir)
        self._compiled = ov.Core().compile_model(
            str(self.onnx_path),
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": precision,
                "INFERENCE_NUM_THREADS": threads or default_threads(),
                # One stream of one request at a time, not pinned to cores that other work uses.
                "NUM_STREAMS": 1,
                "PERFORMANCE_HINT": "LATENCY",
                "ENABLE_CPU_PINNING": False,
            },
        )
        self.precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()  # an infer request runs one inference at a time

    @property
    def model_id(self) -> str:
        return MINILM_BF16_MODEL_ID if self.precision == "bf16" else MINILM_MODEL_ID

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with self._lock:
            outputs = self._request.infer({"input_ids": ids, "attention_mask": mask})
            return np.array(outputs["sentence_embedding"], dtype=np.float32)
