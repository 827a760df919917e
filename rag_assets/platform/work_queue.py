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


# The conflict clauses of the INSERTs into the two customer queues (constants, so that the SQL
# stays static text: tests/integration/privacy/test_injection.py reviews them by name).
QUEUE_RECORD_AGAIN = " ON CONFLICT (system, table_name, pk) DO UPDATE SET system = EXCLUDED.system"
QUEUE_CUSTOMER_AGAIN = " ON CONFLICT (customer_id) DO UPDATE SET customer_id = EXCLUDED.customer_id"
