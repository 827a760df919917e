"""A tiny local stand-in for Bedrock Runtime's InvokeModel (Titan text embeddings v2).

Speaks `POST /model/{modelId}/invoke` on 127.0.0.1 (port chosen by the OS) and can be told to
fail the next N calls with a status code, or to answer slowly, so that retries are tested
through real boto3.
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


@dataclass
class StandinState:
    failures: list[int] = field(default_factory=list)  # status codes for the next calls
    delays: list[float] = field(
        default_factory=list
    )  # seconds to wait before the next answers
    requests: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

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
        if delay:
            time.sleep(delay)
        if failure is not None:
            return self._reply(
                failure,
                {"message": f"stand-in failure {failure}"},
                _ERROR_TYPES.get(failure, "UnknownError"),
            )
        request = json.loads(body)
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
