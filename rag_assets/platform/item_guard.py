"""No single item can stall a source: its failure becomes its dead letter, the batch goes on.

Every source applies its input in batches (a poll of CDC events, a range of feedback turns, a
queue batch of records to link). Parsers reject what they recognise as bad with a specific
reason; this module is the general guard behind them, for the input nobody foresaw:

* A failure is either the *environment's* — the database, Kafka or S3 unreachable, a
  serialisation conflict, an operator's shutdown — or the *item's*: anything else raised while
  that item was handled (a value a library cannot convert, a constraint PostgreSQL rejects, a bug
  on a path only that input takes). `is_environment_failure` tells them apart.
* An environment failure propagates: the batch's transaction rolls back and the batch is retried,
  as before.
* An item failure is pinned on one item (`apply_setting_aside`): prefixes of the batch are
  tried in savepoints (rolled back) until the first item that fails after its predecessors is
  found; the items before it are applied, that item is set aside with its reason
  (`failure_reason`), and the search goes on with the items after it. Applying consecutive
  runs keeps the batch's effect equal to applying it whole; a batch that fails even when empty
  is not the items' fault and fails as a whole; nothing is paid when nothing fails.

Reasons name the stage, the error's type and where it was raised — never the error's message,
which can quote row values (customer PII must stay out of dead-letter reasons and logs).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import PurePath
from typing import Generic, Protocol, Self, TypeVar

import psycopg

T = TypeVar("T")
R = TypeVar("R")

# SQLSTATE classes that say nothing about the statement's data: connection exceptions,
# transaction rollbacks (serialisation, deadlock), insufficient resources, operator
# intervention (shutdown, cancel, statement timeout), system errors and internal errors.
ENVIRONMENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58", "XX"})


_RETRIED_S3_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                               "ServiceUnavailable", "InternalError", "RequestTimeTooSkewed"})


def _environment_error_types() -> tuple[type[BaseException], ...]:
    """Network-level errors of the clients in use. A client's errors are looked up only once its
    module is loaded (none of them can be raised before), so importing this module stays cheap."""
    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError, psycopg.InterfaceError]
    if kafka_errors := sys.modules.get("kafka.errors"):
        kinds.append(kafka_errors.KafkaError)
    if boto_errors := sys.modules.get("botocore.exceptions"):
        kinds.extend((boto_errors.ConnectionError, boto_errors.ReadTimeoutError))
    return tuple(kinds)


def is_environment_failure(error: BaseException) -> bool:
    """True when `error` says the environment failed (retry the batch), False when it is the
    item's (set the item aside)."""
    if isinstance(error, psycopg.Error):
        if isinstance(error, psycopg.InterfaceError) or error.sqlstate is None:
            return True  # no answer from the server: the connection is gone
        return error.sqlstate[:2] in ENVIRONMENT_SQLSTATE_CLASSES
    if isinstance(error, _environment_error_types()):
        return True
    response = getattr(error, "response", None)  # botocore ClientError
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = response.get("Error", {}).get("Code")
        return status >= 500 or code in _RETRIED_S3_CODES
    return False


def failure_reason(stage: str, error: BaseException) -> str:
    """A dead-letter reason for an item that failed: the stage, the error's type (with its
    SQLSTATE for a database error) and the innermost place it was raised — not its message."""
    kind = type(error).__name__
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate:
        kind = f"{kind} (SQLSTATE {sqlstate})"
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ else []
    where = f" at {PurePath(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{stage} failed: {kind}{where}"


@dataclass(frozen=True)
class SetAside(Generic[T]):
    """An item whose handling failed on its own, with the reason to record."""

    item: T
    reason: str


class _Undo(Exception):
    """Raised inside a trial's savepoint to roll it back after it succeeded."""


def apply_setting_aside(items: Sequence[T], apply: Callable[[list[T]], R],
                        savepoint: Callable[[], AbstractContextManager],
                        stage: str) -> tuple[list[R], list[SetAside[T]]]:
    """Apply `items` with `apply` (in order, in one go) inside `savepoint()`; when an item's
    failure interrupts it, set aside each item that fails after its predecessors and apply the
    others, in order, in consecutive runs.

    `apply` must leave no trace but in what `savepoint()` rolls back, and applying a list in
    consecutive parts must equal applying it whole (the sources' batch independence). Returns
    the results of the `apply` calls that were kept (one when nothing failed) and the items set
    aside, in order. Environment failures, and failures that an empty list raises too (nothing
    to do with the items), propagate unchanged."""
    remaining = list(items)
    try:
        with savepoint():
            return [apply(remaining)], []
    except Exception as error:  # noqa: BLE001 — classified right below
        if is_environment_failure(error) or not remaining or _trial([], apply, savepoint):
            raise
    results, set_aside = [], []
    while True:
        index, reason = _first_failing(remaining, apply, savepoint, stage)
        if index:
            with savepoint():
                results.append(apply(remaining[:index]))
        if reason is None:
            return results, set_aside
        set_aside.append(SetAside(remaining[index], reason))
        remaining = remaining[index + 1:]
        try:  # most often the item set aside was the only one
            with savepoint():
                results.append(apply(remaining))
            return results, set_aside
        except Exception as error:  # noqa: BLE001 — classified right below
            if is_environment_failure(error):
                raise


class Counts(Protocol):
    def add(self, other: Self) -> None: ...


S = TypeVar("S", bound=Counts)


def apply_in_transaction(cur, items: Sequence[T], work: Callable[[list[T], S], None],
                         new_counts: Callable[[], S], stage: str) -> tuple[S, list[SetAside[T]]]:
    """`apply_setting_aside` in the transaction of `cur` (its savepoints): `work(part, counts)`
    applies a part of `items` and counts it in fresh `new_counts()`; the counts of the parts
    kept are added up. Returns them and the items set aside."""
    def apply(part: list[T]) -> S:
        counts = new_counts()
        work(part, counts)
        return counts

    kept, set_aside = apply_setting_aside(items, apply, cur.connection.transaction, stage)
    total = new_counts()
    for counts in kept:
        total.add(counts)
    return total, set_aside


def _first_failing(items: list[T], apply: Callable[[list[T]], R],
                   savepoint: Callable[[], AbstractContextManager],
                   stage: str) -> tuple[int, str | None]:
    """The index of the first item that fails after its predecessors and why, or
    (len(items), None) when none does. Prefixes of 1, 2, 4, ... items are tried, then the last
    step is halved: a failing item at index i costs O(log i) trials of O(i) items each, so a
    run of failing items costs one short trial apiece. Every trial is rolled back."""
    good, size = 0, 1
    while True:
        end = min(good + size, len(items))
        failure = _trial(items[:end], apply, savepoint)
        if failure is not None:
            bad, reason = end, failure_reason(stage, failure)
            break
        if end == len(items):
            return end, None
        good, size = end, size * 2
    while bad - good > 1:
        middle = (good + bad) // 2
        failure = _trial(items[:middle], apply, savepoint)
        if failure is None:
            good = middle
        else:
            bad, reason = middle, failure_reason(stage, failure)
    return bad - 1, reason


def _trial(items: list[T], apply: Callable[[list[T]], R],
           savepoint: Callable[[], AbstractContextManager]) -> Exception | None:
    """Apply `items` and roll back whatever happened; the item failure it raised, if any."""
    try:
        with savepoint():
            apply(items)
            raise _Undo
    except _Undo:
        return None
    except Exception as error:  # noqa: BLE001 — classified right below
        if is_environment_failure(error):
            raise
        return error


def guard_each(items: Sequence[T], handle: Callable[[T], R],
               stage: str) -> tuple[list[R], list[SetAside[T]]]:
    """`handle` every item on its own (no shared state to roll back); the items whose handling
    failed are set aside with their reasons. Environment failures propagate."""
    results, set_aside = [], []
    for item in items:
        try:
            results.append(handle(item))
        except Exception as error:  # noqa: BLE001 — classified right below
            if is_environment_failure(error):
                raise
            set_aside.append(SetAside(item, failure_reason(stage, error)))
    return results, set_aside
