"""Strings that break code which splices values into SQL or LanceDB filters; as data, they
must be stored and returned exactly as sent."""

INJECTIONS = [
    "x'; DROP TABLE source_records; --",
    "' OR '1'='1",
    "\"; DROP TABLE feedback_turns; --",
    "1); DELETE FROM customer_profiles; --",
    "$$; DROP SCHEMA public CASCADE; $$",
    "a\\'; TRUNCATE identity_nodes; --",
    "%s %(x)s {0} \\x00",
    "' UNION SELECT customer_id, profile::text FROM customer_profiles --",
    "Robert'); DROP TABLE erased_customers;--",
]
