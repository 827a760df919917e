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

-- What the source catalogue said each table's records mean when they were last linked
-- (customers/catalogue_sync.py): a changed digest queues the table's records again.
CREATE TABLE IF NOT EXISTS catalogue_tables (
    system     text NOT NULL,
    table_name text NOT NULL,
    digest     text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (system, table_name)
);

-- Records whose change the identity graph has not taken in yet (written with the change).
CREATE TABLE IF NOT EXISTS identity_pending (
    system     text NOT NULL,
    table_name text NOT NULL,
    pk         text NOT NULL,
    PRIMARY KEY (system, table_name, pk)
);

-- Identity graph: nodes (source records holding a person), their identifiers and blocking keys,
-- edges with the rule and score that made them, and the record -> customer id assignment.
CREATE TABLE IF NOT EXISTS identity_nodes (
    record_key     text PRIMARY KEY,       -- "system.table:pk"
    identity       jsonb  NOT NULL,        -- normalised identity evidence (PersonIdentity)
    first_seen_ts  bigint NOT NULL,
    first_seen_lsn bigint NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS identity_lookup (
    kind       text NOT NULL,              -- identifier kind (email, phone, ...) or 'block'
    value      text NOT NULL,
    record_key text NOT NULL,
    PRIMARY KEY (kind, value, record_key)
);
CREATE INDEX IF NOT EXISTS identity_lookup_by_record ON identity_lookup (record_key);

CREATE TABLE IF NOT EXISTS identity_edges (
    a_key      text NOT NULL,
    b_key      text NOT NULL,
    rule       text NOT NULL,
    score      double precision NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (a_key, b_key, rule)
);
CREATE INDEX IF NOT EXISTS identity_edges_by_b ON identity_edges (b_key);

CREATE TABLE IF NOT EXISTS customer_assignments (
    record_key  text PRIMARY KEY,
    customer_id text NOT NULL,
    assigned_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS customer_assignments_by_customer ON customer_assignments (customer_id);

CREATE TABLE IF NOT EXISTS customer_ids (
    customer_id text PRIMARY KEY,
    rank        jsonb NOT NULL,            -- age of the id: see identity_graph's stable-id rule
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS cluster_history (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL,             -- created, merged, split, retired
    customer_id text NOT NULL,
    other_id    text,
    run_id      text,
    at          timestamptz NOT NULL DEFAULT now()
);

-- Customers whose profile must be rebuilt (written with the identity change).
CREATE TABLE IF NOT EXISTS profile_pending (
    customer_id text PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS customer_profiles (
    customer_id  text PRIMARY KEY,
    profile      jsonb  NOT NULL,
    content_hash text   NOT NULL,
    version      integer NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Right to be forgotten (rag_assets/customers/erase_customer.py). A request keeps keyed hashes
-- of the erased identifiers, never the identifiers themselves.
CREATE TABLE IF NOT EXISTS erasure_requests (
    request_id        text        PRIMARY KEY,
    requested_at      timestamptz NOT NULL DEFAULT now(),
    source            text        NOT NULL,   -- cli | kafka
    customer_id       text,                   -- NULL: the reference matched no customer
    identifier_hashes text[]      NOT NULL,
    status            text        NOT NULL,   -- lake_pending | completed | ambiguous
    counts            jsonb       NOT NULL,
    run_id            text,
    completed_at      timestamptz
);

-- Source records erased on request: CDC events of these keys are skipped (counted as
-- erased_skipped), so a redelivery or a rebuild from the topics cannot bring them back.
CREATE TABLE IF NOT EXISTS erased_records (
    system     text        NOT NULL,
    table_name text        NOT NULL,
    pk         text        NOT NULL,
    request_id text        NOT NULL,
    erased_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (system, table_name, pk)
);

-- A stamp that changes with every write to the graph tables, whoever writes (a statement-level
-- trigger). A linker that keeps what it read of the graph between batches compares the stamp to
-- the one its own last write left: equal means no one else wrote since. Stamps come from a
-- sequence, whose values are never reused even when a transaction rolls back.
CREATE SEQUENCE IF NOT EXISTS identity_graph_stamps;
CREATE TABLE IF NOT EXISTS identity_graph_stamp (
    single boolean PRIMARY KEY DEFAULT true CHECK (single),
    stamp  bigint  NOT NULL
);
INSERT INTO identity_graph_stamp (stamp) VALUES (0) ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION stamp_identity_graph() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE identity_graph_stamp SET stamp = nextval('identity_graph_stamps');
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER identity_nodes_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON identity_nodes FOR EACH STATEMENT EXECUTE FUNCTION stamp_identity_graph();
CREATE OR REPLACE TRIGGER identity_lookup_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON identity_lookup FOR EACH STATEMENT EXECUTE FUNCTION stamp_identity_graph();
CREATE OR REPLACE TRIGGER identity_edges_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON identity_edges FOR EACH STATEMENT EXECUTE FUNCTION stamp_identity_graph();
CREATE OR REPLACE TRIGGER customer_assignments_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON customer_assignments FOR EACH STATEMENT EXECUTE FUNCTION stamp_identity_graph();
CREATE OR REPLACE TRIGGER customer_ids_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON customer_ids FOR EACH STATEMENT EXECUTE FUNCTION stamp_identity_graph();

-- Blocks of one name's Soundex with the birth year (`ny:`) are no longer built (see
-- matching.py); rows filed under them before would only cost lookups. Runs once, with this file.
DELETE FROM identity_lookup WHERE kind = 'block' AND value LIKE 'ny:%';
