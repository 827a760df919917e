"""The ordering rule of neighbourhood locks and their keys (`cluster_locks`), without a server."""

from rag_assets.customers.cluster_locks import Step, lock_key, neighbourhood_keys, next_step


def test_nothing_to_take_when_the_held_locks_cover_the_need():
    assert next_step({1, 5, 9}, {5, 9}) is None


def test_keys_after_every_held_key_are_simply_taken_in_ascending_order():
    assert next_step({1, 5}, {1, 5, 12, 7}) == Step(restart=False, keys=[7, 12])


def test_a_key_below_a_held_one_restarts_with_the_union_in_ascending_order():
    assert next_step({3, 10}, {3, 10, 4, 20}) == Step(restart=True, keys=[3, 4, 10, 20])


def test_the_first_step_takes_everything_in_order():
    assert next_step(set(), {8, -2, 5}) == Step(restart=False, keys=[-2, 5, 8])


def test_keys_are_64_bit_outside_the_32_bit_range_of_hashtext_locks():
    keys = [lock_key("s", "value:email", f"p{i}@example.com") for i in range(2000)]
    assert all(-(1 << 63) <= k < (1 << 63) and abs(k) >= 1 << 62 for k in keys)
    assert len(set(keys)) == len(keys)


def test_keys_depend_on_the_schema_and_on_what_is_locked():
    pair = neighbourhood_keys("a", [("email", "x@example.com")], [])
    assert pair != neighbourhood_keys("b", [("email", "x@example.com")], [])
    assert pair != neighbourhood_keys("a", [], ["x@example.com"])  # a value is not an id
    assert len(neighbourhood_keys("a", [("email", "x"), ("phone", "x")], ["x"])) == 3
