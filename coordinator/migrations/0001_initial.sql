-- The coordinator's state on PostgreSQL: the sled store's trees as tables.
-- Values are the same serde_json encodings the sled store keeps, byte for
-- byte, so that a sled federation can be copied here unchanged.
-- Applied by `store::postgres` at open, under an advisory lock, once.

-- Federation definition, feature scaling, head, configuration, privacy
-- ledger, strategy state (current and per round), audit frontier,
-- remediations: one row per key, as in sled's `meta` tree.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

-- The node registry.
CREATE TABLE nodes (
    node_id TEXT PRIMARY KEY,
    record  BYTEA NOT NULL
);

-- Completed rounds by number.
CREATE TABLE rounds (
    round  BIGINT PRIMARY KEY CHECK (round >= 0),
    record BYTEA NOT NULL
);

-- Failed attempts by round and attempt.
CREATE TABLE failed_rounds (
    round   BIGINT NOT NULL CHECK (round >= 0),
    attempt BIGINT NOT NULL CHECK (attempt >= 0),
    record  BYTEA NOT NULL,
    PRIMARY KEY (round, attempt)
);

-- Model parameters by content address: a version's bytes never change.
CREATE TABLE models (
    version    TEXT PRIMARY KEY,
    parameters BYTEA NOT NULL
);

-- The audit log: entries by sequence number, signed tree heads by tree size.
CREATE TABLE audit_entries (
    seq   BIGINT PRIMARY KEY CHECK (seq >= 0),
    entry BYTEA NOT NULL
);

CREATE TABLE audit_heads (
    tree_size BIGINT PRIMARY KEY CHECK (tree_size >= 0),
    head      BYTEA NOT NULL
);

-- Model versions that learned from erased data, with the erasure request.
CREATE TABLE tainted_models (
    model_version TEXT PRIMARY KEY,
    request_id    TEXT NOT NULL
);
