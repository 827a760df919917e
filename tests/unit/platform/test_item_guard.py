"""The item guard: an item's failure sets that item aside, the environment's failure retries.

`apply_setting_aside` is tested over an in-memory store whose savepoints restore a copy, so the
property — every item that fails on its own is set aside, every other item is applied once, in
order — is checked for any list and any set of failing items.
"""

from __future__ import annotations

from contextlib import contextmanager

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.errors import KafkaConnectionError

from rag_assets.platform.item_guard import (
    apply_setting_aside,
    failure_reason,
    guard_each,
    is_environment_failure,
)


class PoisonError(ValueError):
    pass


class Store:
    """Applied items in a list; `savepoint()` rolls the list back when its block raises."""

    def __init__(self) -> None:
        self.applied: list[int] = []
        self.attempts = 0

    @contextmanager
    def savepoint(self):
        saved = list(self.applied)
        try:
            yield
        except BaseException:
            self.applied = saved
            raise

    def apply_failing_on(self, poison: set[int]):
        def apply(batch: list[int]) -> int:
            self.attempts += 1
            for item in batch:
                if item in poison:
                    raise PoisonError(f"customer email alice@example.com in item {item}")
                self.applied.append(item)
            return len(batch)
        return apply


@given(st.lists(st.integers(0, 50), max_size=40, unique=True), st.sets(st.integers(0, 50)))
def test_every_failing_item_is_set_aside_and_every_other_applied_once_in_order(items, poison):
    store = Store()
    applied, set_aside = apply_setting_aside(items, store.apply_failing_on(poison),
                                             store.savepoint, "test apply")
    assert store.applied == [i for i in items if i not in poison]
    assert sum(applied) == len(store.applied)
    assert [aside.item for aside in set_aside] == [i for i in items if i in poison]
    assert all(aside.reason.startswith("test apply failed: PoisonError at ") for aside in set_aside)


def test_a_batch_without_failures_is_applied_in_one_attempt():
    store = Store()
    apply_setting_aside(list(range(1000)), store.apply_failing_on(set()), store.savepoint, "s")
    assert store.attempts == 1


def test_one_poison_item_among_a_thousand_costs_a_logarithmic_number_of_attempts():
    store = Store()
    apply_setting_aside(list(range(1000)), store.apply_failing_on({637}), store.savepoint, "s")
    # the batch, the empty batch, ~2 log2(637) trials, the items before it, the items after it
    assert store.attempts <= 2 + 2 * 10 + 2


def test_a_run_of_failing_items_costs_a_few_attempts_each_not_a_search_each():
    store = Store()
    poison = set(range(100, 300))
    apply_setting_aside(list(range(1000)), store.apply_failing_on(poison), store.savepoint, "s")
    assert store.attempts < 2 * len(poison) + 40


def test_a_batch_that_fails_even_when_empty_fails_whole_without_blaming_an_item():
    store = Store()
    calls = []

    def apply(batch):
        calls.append(len(batch))
        raise RuntimeError("a bug on every path, whatever the items")

    with pytest.raises(RuntimeError, match="a bug on every path"):
        apply_setting_aside([1, 2, 3], apply, store.savepoint, "s")
    assert calls == [3, 0]


def test_an_item_that_fails_only_after_another_is_pinned_on_the_later_one():
    store = Store()

    def apply(batch):
        for item in batch:
            if item == "second" and "first" in store.applied:
                raise KeyError("depends on first")
            store.applied.append(item)

    _, set_aside = apply_setting_aside(["first", "x", "second", "y"], apply, store.savepoint, "s")
    assert store.applied == ["first", "x", "y"]
    assert [a.item for a in set_aside] == ["second"]


def test_an_environment_failure_propagates_and_nothing_is_set_aside():
    store = Store()

    def apply(batch):
        raise psycopg.OperationalError("connection to server lost")

    with pytest.raises(psycopg.OperationalError, match="connection to server lost"):
        apply_setting_aside([1, 2, 3], apply, store.savepoint, "s")


def test_an_empty_batch_that_fails_propagates():
    store = Store()

    def apply(batch):
        raise PoisonError("fails even with nothing to apply")

    with pytest.raises(PoisonError, match="nothing to apply"):
        apply_setting_aside([], apply, store.savepoint, "s")


@pytest.mark.parametrize("sqlstate, environment", [
    ("08006", True),   # connection failure
    ("40001", True),   # serialization failure
    ("40P01", True),   # deadlock detected
    ("53100", True),   # disk full
    ("57014", True),   # query canceled (statement timeout)
    ("57P01", True),   # admin shutdown
    ("XX000", True),   # internal error
    ("22P02", False),  # invalid text representation
    ("22003", False),  # numeric value out of range
    ("23514", False),  # check violation
    ("23505", False),  # unique violation
    ("54000", False),  # program limit exceeded (index row too large)
    ("42883", False),  # undefined function: a path only this input takes
])
def test_database_errors_are_classified_by_sqlstate_class(sqlstate, environment):
    error = psycopg.errors.lookup(sqlstate)()
    assert is_environment_failure(error) is environment


@pytest.mark.parametrize("error, environment", [
    (psycopg.OperationalError("server closed the connection"), True),  # no SQLSTATE
    (psycopg.InterfaceError("the connection is closed"), True),
    (KafkaConnectionError(), True),
    (ConnectionRefusedError(), True),
    (TimeoutError(), True),
    (ValueError("Exceeds the limit (4300 digits)"), False),
    (OverflowError("date value out of range"), False),
    (RecursionError(), False),
    (KeyError("x"), False),
    (MemoryError(), False),
])
def test_python_errors_are_classified_by_type(error, environment):
    assert is_environment_failure(error) is environment


def test_s3_errors_are_the_environment_when_the_server_fails_and_the_items_otherwise():
    from botocore.exceptions import ClientError

    def client_error(code, status):
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                           "GetObject")

    assert is_environment_failure(client_error("InternalError", 500))
    assert is_environment_failure(client_error("SlowDown", 503))
    assert not is_environment_failure(client_error("InvalidArgument", 400))


def test_a_reason_names_the_stage_type_sqlstate_and_place_but_never_the_message():
    try:
        raise psycopg.errors.lookup("22003")("value 4242424242 of customer bob@example.com")
    except psycopg.Error as error:
        reason = failure_reason("identity linking", error)
    assert reason.startswith("identity linking failed: NumericValueOutOfRange (SQLSTATE 22003) at "
                             "test_item_guard.py:")
    assert "4242424242" not in reason and "example.com" not in reason


def test_guard_each_sets_aside_the_items_whose_handling_raises():
    results, set_aside = guard_each([1, 0, 2], lambda n: 10 // n, "divide")
    assert results == [10, 5]
    assert [(a.item, a.reason.split(" at ")[0]) for a in set_aside] == [
        (0, "divide failed: ZeroDivisionError")]


def test_guard_each_lets_an_environment_failure_through():
    def handle(item):
        raise ConnectionResetError("peer reset")

    with pytest.raises(ConnectionResetError):
        guard_each([1], handle, "s")
