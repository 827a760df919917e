"""Queue tables (`identity_pending`, `profile_pending`): rows name work still to do, and a
drainer claims a batch with `FOR UPDATE SKIP LOCKED`, does the work and deletes the rows.

Queueing must not use `ON CONFLICT DO NOTHING`. While a drainer holds a row, new work for the
same key (a record changed again, a customer's cluster changed again) finds the row and does
nothing, without waiting. Then the drainer deletes the row, and the new work is lost: the
drainer read the state from before it. `ON CONFLICT ... DO UPDATE` locks the row instead. So
it waits for the drainer's transaction to end, and then queues the key anew
(tests/integration/customers/test_work_queue.py). It costs one row version for a key that is
already queued and idle.
"""


def queue_again(*key_columns: str) -> str:
    """The conflict clause of an INSERT into a queue table keyed by `key_columns`."""
    first = key_columns[0]
    return f" ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {first} = EXCLUDED.{first}"
