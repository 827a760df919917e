-- Feedback analytics state. Idempotent; applied by rag_assets.platform.db.ensure_schema.

-- One row per accepted turn (the KPI inputs of kpis.TurnFact plus what scoring needs).
-- Written by conversation_log in the transaction that claims its offsets; satisfaction is NULL
-- until feedback_scored has scored the turn (the scoring queue).
CREATE TABLE IF NOT EXISTS feedback_turns (
    conversation_id text             NOT NULL,
    turn_id         text             NOT NULL,
    customer_ref    text,
    model_id        text             NOT NULL,
    event_time      timestamptz      NOT NULL,
    latency_ms      double precision NOT NULL,
    has_context     boolean          NOT NULL,
    rating_up       boolean,
    rating_score    double precision,
    comment         text,
    topic           text             NOT NULL,   -- logical topic, e.g. app.feedback
    partition       integer          NOT NULL,
    "offset"        bigint           NOT NULL,
    sentiment       double precision,            -- comment score in [-1, 1]; NULL without comment
    satisfaction    text,                        -- NULL = not scored yet
    run_id          text,
    scored_run_id   text,
    score_attempts  integer          NOT NULL DEFAULT 0,  -- failed scorings since the last success
    score_error     text,                        -- why the last scoring failed (no comment text)
    score_retry_at  timestamptz,                 -- not claimed for scoring before this time
    PRIMARY KEY (conversation_id, turn_id)
);
-- Tables created before the scoring-retry columns get them; checked first, so that the
-- exclusive lock of ALTER TABLE is taken once, not on every run.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                   AND table_name = 'feedback_turns' AND column_name = 'score_retry_at') THEN
        ALTER TABLE feedback_turns ADD COLUMN IF NOT EXISTS score_attempts integer NOT NULL DEFAULT 0,
            ADD COLUMN IF NOT EXISTS score_error text,
            ADD COLUMN IF NOT EXISTS score_retry_at timestamptz;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS feedback_turns_event_time ON feedback_turns (event_time);
CREATE INDEX IF NOT EXISTS feedback_turns_unscored
    ON feedback_turns (topic, partition, "offset") WHERE satisfaction IS NULL;

-- The watermark state of windows.WatermarkState: greatest applied event time per partition,
-- committed with the offsets that moved it.
CREATE TABLE IF NOT EXISTS feedback_frontiers (
    topic     text        NOT NULL,
    partition integer     NOT NULL,
    frontier  timestamptz NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- Deliveries dropped from the KPIs as too late, per window and model (they still land in the lake).
CREATE TABLE IF NOT EXISTS feedback_late_drops (
    granularity  text        NOT NULL,   -- hour | day
    window_start timestamptz NOT NULL,
    model_id     text        NOT NULL,
    dropped_late bigint      NOT NULL,
    PRIMARY KEY (granularity, window_start, model_id)
);

-- Windows whose KPI rows must be recomputed. Append-only queue: a consumer deletes only the
-- ids it has read, so a window queued while it recomputes stays queued.
CREATE TABLE IF NOT EXISTS feedback_kpi_pending (
    id           bigserial   PRIMARY KEY,
    granularity  text        NOT NULL,
    window_start timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_kpi_pending_granularity ON feedback_kpi_pending (granularity, id);

-- The KPI tables: one row per (window, model_id) with at least one accepted turn.
CREATE TABLE IF NOT EXISTS kpi_hourly (
    window_start       timestamptz      NOT NULL,
    window_end         timestamptz      NOT NULL,
    model_id           text             NOT NULL,
    turns              integer          NOT NULL,
    conversations      integer          NOT NULL,
    rated_turns        integer          NOT NULL,
    rated_share        double precision NOT NULL,
    polar_ratings      integer          NOT NULL,
    positive_ratings   integer          NOT NULL,
    thumbs_up_rate     double precision,
    scored_turns       integer          NOT NULL,
    mean_rating        double precision,
    latency_p50_ms     double precision NOT NULL,
    latency_p95_ms     double precision NOT NULL,
    satisfied          integer          NOT NULL,
    neutral            integer          NOT NULL,
    dissatisfied       integer          NOT NULL,
    unknown            integer          NOT NULL,
    turns_with_context integer          NOT NULL,
    with_context_share double precision NOT NULL,
    dropped_late       bigint           NOT NULL DEFAULT 0,
    computed_at        timestamptz      NOT NULL DEFAULT now(),
    run_id             text,
    PRIMARY KEY (window_start, model_id)
);
CREATE TABLE IF NOT EXISTS kpi_daily (LIKE kpi_hourly INCLUDING ALL);

-- Lake objects written, so a rebuild does not write a second copy of offsets already landed.
CREATE TABLE IF NOT EXISTS conversation_lake_objects (
    object_key   text        PRIMARY KEY,
    event_date   date        NOT NULL,
    topic        text        NOT NULL,   -- logical topic
    partition    integer     NOT NULL,
    start_offset bigint      NOT NULL,
    end_offset   bigint      NOT NULL,   -- exclusive
    row_count    integer     NOT NULL,
    run_id       text,
    written_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS conversation_lake_objects_partition
    ON conversation_lake_objects (topic, partition, start_offset);

-- Right to erasure, the suppression list: turns whose customer reference (any form the app
-- uses: crm:<id>, e-mail, loyalty number, phone) stands for an erased customer are never
-- stored, landed or exported again. It holds keyed hashes (HMAC-SHA256 under
-- RAG_ERASURE_HASH_KEY) of the normalised forms, never a reference (customers/erasure.py).
CREATE TABLE IF NOT EXISTS erased_reference_hashes (
    digest    text        PRIMARY KEY,
    erased_at timestamptz NOT NULL DEFAULT now()
);

-- The list as versions before the hashes kept it, in clear; its rows are hashed into
-- erased_reference_hashes and removed the first time the list is read.
CREATE TABLE IF NOT EXISTS erased_customers (
    customer_ref text        PRIMARY KEY,
    erased_at    timestamptz NOT NULL DEFAULT now()
);

-- Turns flagged out of fine-tuning (moderation, known-wrong answers).
CREATE TABLE IF NOT EXISTS finetune_flagged_turns (
    conversation_id text NOT NULL,
    turn_id         text NOT NULL,
    reason          text,
    PRIMARY KEY (conversation_id, turn_id)
);

-- Every fine-tuning export; the version is the content hash, so re-exports are idempotent.
CREATE TABLE IF NOT EXISTS finetune_exports (
    version      text        PRIMARY KEY,
    dataset_key  text        NOT NULL,
    manifest_key text        NOT NULL,
    records_out  integer     NOT NULL,
    manifest     jsonb       NOT NULL,
    run_id       text,
    exported_at  timestamptz NOT NULL DEFAULT now()
);
-- An export holding a turn that an erasure later removed from the lake is withdrawn: the row
-- stays (what was exported, when, which erasure withdrew it), its objects are deleted.
ALTER TABLE finetune_exports ADD COLUMN IF NOT EXISTS withdrawn_at timestamptz;
ALTER TABLE finetune_exports ADD COLUMN IF NOT EXISTS withdrawn_by text[];  -- the erasure requests
ALTER TABLE finetune_exports ADD COLUMN IF NOT EXISTS objects_removed_at timestamptz;
