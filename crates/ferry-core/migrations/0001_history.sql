-- Ferry history: sessions, usage samples, workspace sessions seen, settings.
-- Times are unix milliseconds (UTC). Money is integer millicents, credits REAL, bytes INTEGER.
-- No secrets (tokens, keys) are ever stored here.

CREATE TABLE sessions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    client_session_id  TEXT NOT NULL UNIQUE,
    service            TEXT NOT NULL CHECK (service IN ('orbnet', 'tunnelbyte', 'neosc')),
    account            TEXT,
    location           TEXT,
    server_session_id  TEXT,
    state              TEXT NOT NULL DEFAULT 'starting' CHECK (state IN ('starting', 'connected', 'ended')),
    started_at_ms      INTEGER NOT NULL,
    connected_at_ms    INTEGER,
    last_ack_at_ms     INTEGER,
    ended_at_ms        INTEGER,
    end_reason         TEXT,
    credits_used       REAL,
    credits_remaining  REAL,
    cost_millicents    INTEGER,
    cost_currency      TEXT,
    bytes_in           INTEGER NOT NULL DEFAULT 0,
    bytes_out          INTEGER NOT NULL DEFAULT 0,
    exit_ip            TEXT
);

CREATE INDEX sessions_by_start ON sessions (started_at_ms DESC, id DESC);
CREATE INDEX sessions_open ON sessions (state) WHERE state <> 'ended';
CREATE INDEX sessions_by_server_id ON sessions (service, server_session_id);

CREATE TABLE usage_samples (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    session_row          INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    at_ms                INTEGER NOT NULL,
    bytes_in             INTEGER,
    bytes_out            INTEGER,
    credits_remaining    REAL,
    credits_used         REAL,
    cost_millicents      INTEGER,
    quota_bytes_used     INTEGER,
    quota_bytes_limit    INTEGER,
    quota_seconds_used   INTEGER,
    quota_seconds_limit  INTEGER
);

CREATE INDEX usage_samples_by_session ON usage_samples (session_row, at_ms);

CREATE TABLE workspace_sessions (
    id              TEXT PRIMARY KEY,
    account         TEXT,
    workspace_id    TEXT NOT NULL,
    workspace_name  TEXT,
    workspace_type  TEXT,
    status          TEXT NOT NULL,
    started_at_ms   INTEGER,
    ended_at_ms     INTEGER,
    launched_here   INTEGER NOT NULL DEFAULT 0,
    first_seen_ms   INTEGER NOT NULL,
    last_seen_ms    INTEGER NOT NULL
);

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
