"""`ensure_schema`, called by every run, must not lock tables that other runs are writing."""

import psycopg
import pytest

from rag_assets.feedback.assets import FEEDBACK_SCHEMA_FILES
from rag_assets.platform.db import ensure_schema

pytestmark = pytest.mark.integration


def test_an_unchanged_schema_takes_no_table_lock(postgres):
    with postgres.transaction() as cur:
        ensure_schema(cur, postgres.db_schema, FEEDBACK_SCHEMA_FILES)
    with postgres.transaction() as writer:
        # Another run writing rows; re-running `CREATE INDEX IF NOT EXISTS` would wait for it.
        writer.execute(f'LOCK TABLE "{postgres.db_schema}".feedback_turns IN ROW EXCLUSIVE MODE')
        with postgres.transaction() as cur:
            cur.execute("SET LOCAL lock_timeout = '2s'")
            ensure_schema(cur, postgres.db_schema, FEEDBACK_SCHEMA_FILES)


def test_a_long_transaction_that_ensured_the_schema_holds_no_one_back(postgres):
    """A fine-tuning export ensures the schema, then works for minutes in the same transaction:
    meanwhile every other run and sensor tick must still get through `ensure_schema`."""
    with postgres.transaction() as cur:
        ensure_schema(cur, postgres.db_schema, FEEDBACK_SCHEMA_FILES)
    with postgres.transaction() as long_running:
        ensure_schema(long_running, postgres.db_schema, FEEDBACK_SCHEMA_FILES)
        with postgres.transaction() as cur:
            cur.execute("SET LOCAL lock_timeout = '2s'")
            ensure_schema(cur, postgres.db_schema)
            ensure_schema(cur, postgres.db_schema, FEEDBACK_SCHEMA_FILES)


def test_a_changed_schema_file_is_applied_again(postgres):
    with postgres.transaction() as cur:
        ensure_schema(cur, postgres.db_schema, FEEDBACK_SCHEMA_FILES)
        cur.execute("DROP INDEX feedback_turns_event_time")
        cur.execute("UPDATE schema_files SET sha256 = 'older' WHERE name = %s",
                    ("rag_assets.feedback/schema.sql",))
    with postgres.transaction() as cur:
        ensure_schema(cur, postgres.db_schema, FEEDBACK_SCHEMA_FILES)
        cur.execute("SELECT to_regclass('feedback_turns_event_time')")
        assert cur.fetchone()[0] is not None


def test_the_lock_test_would_fail_with_the_ddl_re_run(postgres):
    """The premise of the first test: the index statement itself does wait for the writer."""
    with postgres.transaction() as cur:
        ensure_schema(cur, postgres.db_schema, FEEDBACK_SCHEMA_FILES)
    with postgres.transaction() as writer:
        writer.execute(f'LOCK TABLE "{postgres.db_schema}".feedback_turns IN ROW EXCLUSIVE MODE')
        with postgres.transaction() as cur, pytest.raises(psycopg.errors.LockNotAvailable):
            cur.execute("SET LOCAL lock_timeout = '1s'")
            cur.execute(f'CREATE INDEX IF NOT EXISTS feedback_turns_event_time'
                        f' ON "{postgres.db_schema}".feedback_turns (event_time)')
