-- The knowledge-base document registry. Statements are idempotent; run by rag_assets.platform.db.
--
-- One row per document key under the knowledge prefix. (etag, version_id) is the latest version
-- the pipeline has been told about (by a listing or an event notification); served_version is the
-- version whose chunks LanceDB serves now. The row is also the work queue of `document_chunks`:
--   pending  — a new version to parse, chunk and embed
--   deleting — the object is gone; its chunks must go
--   indexed  — served_version is this version
--   rejected — this version is unusable (binary, wrong encoding, empty, too large): reason in
--              `error`, a dead letter stored; earlier chunks, if any, stay served
--   failed   — a transient failure (e.g. the embedder): earlier chunks stay served; retried
--              after next_attempt_at with exponential backoff
-- Keys compare byte-wise (COLLATE "C"), the order in which S3 lists them.

CREATE TABLE IF NOT EXISTS kb_documents (
    doc_key         text COLLATE "C" PRIMARY KEY,
    etag            text NOT NULL,
    version_id      text,
    size_bytes      bigint,
    status          text NOT NULL CHECK (status IN ('pending', 'deleting', 'indexed', 'rejected', 'failed')),
    content_hash    text,           -- sha256 of the bytes last read
    error           text,           -- why the last attempt failed or was rejected; NULL otherwise
    attempts        integer NOT NULL DEFAULT 0,  -- consecutive failed attempts
    next_attempt_at timestamptz,
    served_version  text,           -- document version of the chunks in LanceDB; NULL when none
    chunk_count     integer NOT NULL DEFAULT 0,
    seen_at         timestamptz NOT NULL DEFAULT now(),  -- when this version was registered
    indexed_at      timestamptz,    -- when served_version was written
    updated_at      timestamptz NOT NULL DEFAULT now(),
    run_id          text            -- the last run that changed the row
);
CREATE INDEX IF NOT EXISTS kb_documents_queue ON kb_documents (status, next_attempt_at)
    WHERE status IN ('pending', 'deleting', 'failed');

-- Claims of document workers (several processes indexing one table): a worker takes queued rows
-- with FOR UPDATE SKIP LOCKED and stamps them with its id, its session's backend and a lease; the
-- claim is committed at once. A claim ends when the worker commits, when its backend is gone (the
-- worker's process died and its connection with it) or, failing that, when the lease expires.
ALTER TABLE kb_documents ADD COLUMN IF NOT EXISTS claimed_by text;
ALTER TABLE kb_documents ADD COLUMN IF NOT EXISTS claimed_backend integer;
ALTER TABLE kb_documents ADD COLUMN IF NOT EXISTS claim_expires_at timestamptz;

-- Where the listing of a prefix resumes, shared by the workers that take turns listing it.
CREATE TABLE IF NOT EXISTS kb_listing_cursor (
    prefix       text COLLATE "C" PRIMARY KEY,
    start_after  text COLLATE "C",   -- NULL: the next listing starts a new pass
    listed_by    text NOT NULL,
    listed_at    timestamptz NOT NULL DEFAULT now()
);
