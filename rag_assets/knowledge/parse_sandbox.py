"""Parsing documents in a child process with a time and a memory limit.

A document comes from whoever can write to the bucket. Parsing it in the indexer's own process
would let one hostile file hold the documents source for as long as it takes (a PDF whose
content streams loop, text that makes a parser's work explode) or exhaust the process's memory.
So `SandboxedParser.parse` hands each document to a child process that parses it under an
address-space limit (`RLIMIT_AS`) and answers within `ParseLimits.seconds`, or is killed (by
pid, SIGKILL) and replaced; the document is then rejected with that reason, and its previous
version keeps serving. The child is started once and reused, so a document costs two pipe
messages, not a process start.
"""

from __future__ import annotations

import atexit
import multiprocessing
import resource
import threading
from dataclasses import dataclass

from rag_assets.knowledge.parsing import ParsedDocument, UnusableDocument, parse_document
from rag_assets.platform.item_guard import failure_reason

_MB = 1024 * 1024
STARTUP_SECONDS = 120.0


@dataclass(frozen=True)
class ParseLimits:
    seconds: float = 30.0
    memory_mb: int = 1024  # address space the child may add to what it holds when it starts


def _serve(conn, memory_mb: int) -> None:
    """The child: parse what arrives until the pipe closes; every document gets an answer."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        in_use = int(statm.read().split()[0]) * resource.getpagesize()
    limit = in_use + memory_mb * _MB
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY
                                            else min(limit, hard), hard))
    conn.send(("ready", None))
    while True:
        try:
            key, body, max_bytes = conn.recv()
            answer = ("parsed", parse_document(key, body, max_bytes))
        except EOFError:
            return
        except UnusableDocument as error:
            answer = ("unusable", error.reason)
        except MemoryError:
            answer = ("unusable", f"parsing needs more than {memory_mb} MB (the limit)")
        except Exception as error:  # noqa: BLE001 — the item guard's rule: this document's fault
            answer = ("unusable", failure_reason("document parser", error))
        key = body = None  # free the document before waiting for the next one
        try:
            conn.send(answer)
        except BrokenPipeError:  # the parent gave up on this document and left
            return


class SandboxedParser:
    """`parse_document` in a reusable child process with a time and a memory limit."""

    def __init__(self, limits: ParseLimits | None = None) -> None:
        self.limits = limits or ParseLimits()
        self._lock = threading.Lock()  # one document at a time through the pipe
        self._process = None
        self._conn = None

    def parse(self, key: str, body: bytes, max_bytes: int) -> ParsedDocument:
        """The parsed document, or `UnusableDocument` with the reason — including a time or
        memory limit hit, or the child dying."""
        with self._lock:
            conn = self._child()
            conn.send((key, body, max_bytes))
            if not conn.poll(self.limits.seconds):
                self._stop()
                raise UnusableDocument(
                    f"parsing took longer than {self.limits.seconds:g} s (the limit)")
            try:
                kind, value = conn.recv()
            except EOFError:
                self._stop()
                raise UnusableDocument("the parser process died on this document") from None
        if kind == "unusable":
            raise UnusableDocument(value)
        return value

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _child(self):
        if self._process is None or not self._process.is_alive():
            self._stop()
            context = multiprocessing.get_context("spawn")  # no fork of a threaded process
            self._conn, child_conn = context.Pipe()
            self._process = context.Process(target=_serve, name="document-parser", daemon=True,
                                            args=(child_conn, self.limits.memory_mb))
            self._process.start()
            child_conn.close()
            # Starting an interpreter is not the document's time: wait for the child apart.
            if not self._conn.poll(STARTUP_SECONDS) or self._conn.recv()[0] != "ready":
                self._stop()
                raise TimeoutError("the document parser process did not start")  # retried
        return self._conn

    def _stop(self) -> None:
        """Close the pipe (an idle child exits on it), then SIGKILL what is still running:
        never SIGTERM, which a child inherits ignored where its parent ignores it."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(timeout=2)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout=10)
            self._process = None


_shared: SandboxedParser | None = None
_shared_lock = threading.Lock()


def shared_parser() -> SandboxedParser:
    """The process's parser (its child is started on first use and stopped at exit, before
    multiprocessing's own exit handler would SIGTERM and wait for it)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SandboxedParser()
            atexit.register(_shared.close)
        return _shared
