-- Who may call the retrieval endpoint, and what they looked up. Statements are idempotent; run by
-- rag_assets.platform.db.
--
-- retrieval_clients: one row per client; only the SHA-256 digest of its token is kept (the token
-- is shown once, when the client is added). A revoked client keeps its row for the audit trail.
-- retrieval_audit: one row per context call that named a customer: which client, which customer
-- id it resolved to (NULL when none did) — never the reference itself, which can be an e-mail.

CREATE TABLE IF NOT EXISTS retrieval_clients (
    client_id    text PRIMARY KEY,
    token_sha256 text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

CREATE TABLE IF NOT EXISTS retrieval_audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    client_id   text NOT NULL,
    customer_id text
);

CREATE INDEX IF NOT EXISTS retrieval_audit_client_at ON retrieval_audit (client_id, at);
