-- Tables shared by every pipeline. Statements are idempotent; run by rag_assets.platform.db.

CREATE TABLE IF NOT EXISTS applied_offsets (
    consumer     text    NOT NULL,   -- which pipeline applied the range, e.g. 'source_records'
    topic        text    NOT NULL,
    partition    integer NOT NULL,
    start_offset bigint  NOT NULL,
    end_offset   bigint  NOT NULL,   -- exclusive
    applied_at   timestamptz NOT NULL DEFAULT now(),
    run_id       text,
    PRIMARY KEY (consumer, topic, partition, start_offset)
);

CREATE TABLE IF NOT EXISTS dead_letters (
    id             bigserial PRIMARY KEY,
    source         text NOT NULL,
    reason         text NOT NULL,
    topic          text,
    partition      integer,
    "offset"       bigint,
    object_key     text,
    object_version text,
    payload        bytea,
    run_id         text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    replayed_at    timestamptz,
    replay_result  text
);
-- A redelivered bad record is one dead letter, not two.
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_kafka_position
    ON dead_letters (source, topic, partition, "offset") WHERE topic IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_object_version
    ON dead_letters (source, object_key, object_version) WHERE object_key IS NOT NULL;
-- What a letter can be tied to, as keyed hashes (customers/dead_letter_ties.py): an erasure
-- deletes the letters sharing one with the erased person. NULL for letters stored before.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS ties text[];
CREATE INDEX IF NOT EXISTS dead_letters_ties ON dead_letters USING gin (ties);
-- When the payload was set to NULL: on a successful replay, or by the retention.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS payload_cleared_at timestamptz;
CREATE INDEX IF NOT EXISTS dead_letters_payload_age
    ON dead_letters (created_at) WHERE payload IS NOT NULL;
-- The ties of every person erased (keyed hashes of their records, customer id, references and
-- identifiers): a letter stored after the erasure that shares one keeps its reason and position
-- but not its payload (a redelivered bad event of an erased record).
CREATE TABLE IF NOT EXISTS erased_letter_ties (
    tie        text PRIMARY KEY,
    request_id text NOT NULL
);

-- What the streaming sensors applied, written in the transaction of the data it describes and
-- reported to Dagster as materialisations by the next tick (a transactional outbox): a change
-- committed here always reaches the lineage, even if the tick that applied it died.
CREATE TABLE IF NOT EXISTS lineage_outbox (
    id         bigserial PRIMARY KEY,
    stream     text        NOT NULL,   -- the streaming sensor, e.g. 'cdc_stream'
    asset_key  text        NOT NULL,
    metadata   jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- the writing transaction: rows are read in its order, once every older one has ended
    -- (lineage_outbox.py: writers commit in any order, ids are drawn before the commit)
    xid        xid8        NOT NULL DEFAULT pg_current_xact_id()
);
ALTER TABLE lineage_outbox ADD COLUMN IF NOT EXISTS xid xid8 NOT NULL DEFAULT pg_current_xact_id();
DROP INDEX IF EXISTS lineage_outbox_stream;
CREATE INDEX IF NOT EXISTS lineage_outbox_position ON lineage_outbox (stream, xid, id);
