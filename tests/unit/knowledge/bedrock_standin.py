"""A tiny local stand-in for Bedrock Runtime's InvokeModel: Titan text embeddings v2, and the
text models the sentiment scorer asks (Anthropic Claude Messages and Amazon Nova formats).

Speaks `POST /model/{modelId}/invoke` on 127.0.0.1 (port chosen by the OS) and can be told to
fail the next N calls with a status code, to answer slowly, or (text models) to answer with
given text, so that retries and malformed answers are tested through real boto3.

A text-model request whose user message is `{"comments": [...]}` is answered with
`{"scores": [...]}` from `standin_sentiment`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import numpy as np

from rag_assets.platform.retry import RetryPolicy

_ERROR_TYPES = {
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
    400: "ValidationException",
    403: "AccessDeniedException",
}


def standin_embedding(text: str, dimension: int) -> list[float]:
    """Deterministic per text, unit length — enough to check order and plumbing."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    vector = np.random.default_rng(seed).standard_normal(dimension)
    return (vector / np.linalg.norm(vector)).tolist()


def standin_sentiment(text: str) -> float:
    """A keyword score: enough to check order and plumbing."""
    lowered = text.lower()
    if "great" in lowered or "thanks" in lowered:
        return 0.8
    if "awful" in lowered or "useless" in lowered:
        return -0.7
    return 0.0


def _text_answer(request: dict, text: str, stop_reason: str) -> dict:
    if "anthropic_version" in request:
        return {"type": "message", "role": "assistant", "stop_reason": stop_reason,
                "content": [{"type": "text", "text": text}]}
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": stop_reason}


def _scores_text(request: dict) -> str:
    user_text = request["messages"][0]["content"][0]["text"]
    comments = json.loads(user_text)["comments"]
    return json.dumps({"scores": [standin_sentiment(c) for c in comments]})


@dataclass
class StandinState:
    failures: list[int] = field(default_factory=list)  # status codes for the next calls
    delays: list[float] = field(
        default_factory=list
    )  # seconds to wait before the next answers
    requests: list[dict] = field(default_factory=list)
    # (text, stop reason) a text model gives instead of its scores in the next answers
    answers: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer_next(self, count: int, text: str, stop_reason: str = "end_turn") -> None:
        with self.lock:
            self.answers.extend([(text, stop_reason)] * count)

    def fail_next(self, count: int, status: int) -> None:
        with self.lock:
            self.failures.extend([status] * count)

    def delay_next(self, count: int, seconds: float) -> None:
        with self.lock:
            self.delays.extend([seconds] * count)


class _Handler(BaseHTTPRequestHandler):
    state: StandinState

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        parts = self.path.split("/")
        if len(parts) != 4 or parts[1] != "model" or parts[3] != "invoke":
            return self._reply(
                404, {"message": "unknown path"}, "ResourceNotFoundException"
            )
        model_id = urllib.parse.unquote(parts[2])
        with self.state.lock:
            self.state.requests.append(
                {"model_id": model_id, "body": json.loads(body or b"{}")}
            )
            failure = self.state.failures.pop(0) if self.state.failures else None
            delay = self.state.delays.pop(0) if self.state.delays else 0.0
            answer = self.state.answers.pop(0) if self.state.answers and not failure else None
        if delay:
            time.sleep(delay)
        if failure is not None:
            return self._reply(
                failure,
                {"message": f"stand-in failure {failure}"},
                _ERROR_TYPES.get(failure, "UnknownError"),
            )
        request = json.loads(body)
        if "messages" in request:
            text, stop_reason = answer or (_scores_text(request), "end_turn")
            return self._reply(200, _text_answer(request, text, stop_reason))
        dimension = int(request.get("dimensions", 1024))
        self._reply(
            200,
            {
                "embedding": standin_embedding(request["inputText"], dimension),
                "inputTextTokenCount": len(request["inputText"].split()),
            },
        )

    def _reply(self, status: int, payload: dict, error_type: str | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if error_type:
                self.send_header("x-amzn-ErrorType", error_type)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (read timeout) before the slow answer came

    def log_message(self, format: str, *args: object) -> None:
        pass


def fast_retry_options(
    standin: "BedrockStandin", max_attempts: int, read_timeout_seconds: float = 5.0
) -> tuple[dict, list[float]]:
    """`BedrockInvoker` options aimed at the stand-in with tiny backoffs, and the list the
    backoff sleeps are recorded in (instead of sleeping)."""
    sleeps: list[float] = []
    options = {
        "endpoint_url": standin.endpoint_url,
        "retry_policy": RetryPolicy(
            max_attempts=max_attempts, base_delay_seconds=0.01, max_delay_seconds=0.05
        ),
        "read_timeout_seconds": read_timeout_seconds,
        "sleep": sleeps.append,
    }
    return options, sleeps


class BedrockStandin:
    def __init__(self) -> None:
        self.state = StandinState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
