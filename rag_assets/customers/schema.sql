-- Customer 360 state. Idempotent; applied by rag_assets.platform.db.ensure_schema.

CREATE TABLE IF NOT EXISTS source_records (
    system        text   NOT NULL,
    table_name    text   NOT NULL,
    pk            text   NOT NULL,
    row_data      jsonb,                 -- NULL once the row is deleted (a tombstone state)
    version       jsonb  NOT NULL,       -- {"ts_ms", "lsn", "column"}: see source_state.RecordVersion
    first_version jsonb  NOT NULL,
    applied_ids   text[] NOT NULL,       -- identities of the events applied at this version
    topic         text   NOT NULL,       -- provenance: the event that produced this state
    partition     integer NOT NULL,
    "offset"      bigint NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (system, table_name, pk)
);

CREATE TABLE IF NOT EXISTS table_truncations (
    system     text  NOT NULL,
    table_name text  NOT NULL,
    version    jsonb NOT NULL,
    PRIMARY KEY (system, table_name)
);

-- Records whose change the identity graph has not taken in yet (written with the change).
CREATE TABLE IF NOT EXISTS identity_pending (
    system     text NOT NULL,
    table_name text NOT NULL,
    pk         text NOT NULL,
    PRIMARY KEY (system, table_name, pk)
);
