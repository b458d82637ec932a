-- Personas schema, version 1: the runtime foundation.
-- Timestamps are INTEGER milliseconds since the Unix epoch (UTC); JSON columns hold TEXT.
-- Migrations are append-only: never edit a released one, add V<n+1>.

CREATE TABLE personas (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description     TEXT NOT NULL DEFAULT '',
    instructions    TEXT NOT NULL,
    sections        TEXT NOT NULL DEFAULT '[]',
    model           TEXT,
    max_concurrent  INTEGER NOT NULL DEFAULT 1 CHECK (max_concurrent >= 1),
    timeout_secs    INTEGER NOT NULL CHECK (timeout_secs >= 1),
    max_turns       INTEGER CHECK (max_turns IS NULL OR max_turns >= 1),
    max_budget_usd  REAL CHECK (max_budget_usd IS NULL OR max_budget_usd > 0),
    permissions     TEXT NOT NULL DEFAULT '{}',
    enabled         INTEGER NOT NULL DEFAULT 1,
    prompt_version  INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- Every change to a persona's prompt is a new numbered version.
CREATE TABLE prompt_versions (
    persona_id   TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    instructions TEXT NOT NULL,
    sections     TEXT NOT NULL DEFAULT '[]',
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (persona_id, version)
) WITHOUT ROWID;

-- Custom tools a persona can call: an HTTP request template or a command.
CREATE TABLE tool_definitions (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description  TEXT NOT NULL DEFAULT '',
    input_schema TEXT NOT NULL DEFAULT '{}',
    kind         TEXT NOT NULL CHECK (kind IN ('http', 'command')),
    config       TEXT NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE persona_tools (
    persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
    tool_id    TEXT NOT NULL REFERENCES tool_definitions(id) ON DELETE CASCADE,
    PRIMARY KEY (persona_id, tool_id)
) WITHOUT ROWID;

-- One run of a persona. The queue is this table: status 'queued' rows ordered by priority, age.
-- persona_id is kept NULL-able so history survives deleting a persona (persona_name keeps the
-- name it ran under).
CREATE TABLE executions (
    id                    TEXT PRIMARY KEY,
    persona_id            TEXT REFERENCES personas(id) ON DELETE SET NULL,
    persona_name          TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('queued', 'running', 'awaiting_review',
                              'completed', 'failed', 'incomplete', 'cancelled', 'timed_out')),
    priority              INTEGER NOT NULL DEFAULT 0,
    trigger_kind          TEXT NOT NULL,
    trigger_ref           TEXT,
    idempotency_key       TEXT UNIQUE,
    input                 TEXT,
    prompt_version        INTEGER,
    session_id            TEXT,
    model                 TEXT,
    num_turns             INTEGER NOT NULL DEFAULT 0,
    input_tokens          INTEGER NOT NULL DEFAULT 0,
    output_tokens         INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens     INTEGER NOT NULL DEFAULT 0,
    cache_creation_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd              REAL NOT NULL DEFAULT 0,
    result_text           TEXT,
    outcome_accomplished  INTEGER,
    outcome_summary       TEXT,
    error_class           TEXT,
    error_message         TEXT,
    permission_denials    TEXT NOT NULL DEFAULT '[]',
    parse_warnings        INTEGER NOT NULL DEFAULT 0,
    output_lines          INTEGER NOT NULL DEFAULT 0,
    output_truncated      INTEGER NOT NULL DEFAULT 0,
    cancel_requested      INTEGER NOT NULL DEFAULT 0,
    owner                 TEXT,
    pid                   INTEGER,
    queued_at             INTEGER NOT NULL,
    started_at            INTEGER,
    finished_at           INTEGER,
    heartbeat_at          INTEGER
);
CREATE INDEX executions_queue ON executions (status, priority DESC, queued_at, id);
CREATE INDEX executions_by_persona ON executions (persona_id, status);
CREATE INDEX executions_recent ON executions (queued_at DESC);

-- Ordered, typed output lines of an execution, already redacted.
CREATE TABLE execution_output (
    execution_id TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    text         TEXT NOT NULL,
    at           INTEGER NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;

-- user_message: the inbox.
CREATE TABLE messages (
    id           TEXT PRIMARY KEY,
    execution_id TEXT REFERENCES executions(id) ON DELETE SET NULL,
    persona_id   TEXT REFERENCES personas(id) ON DELETE SET NULL,
    persona_name TEXT NOT NULL,
    title        TEXT,
    content      TEXT NOT NULL,
    priority     TEXT NOT NULL DEFAULT 'normal',
    status       TEXT NOT NULL DEFAULT 'unread' CHECK (status IN ('unread', 'read')),
    created_at   INTEGER NOT NULL,
    read_at      INTEGER
);
CREATE INDEX messages_recent ON messages (created_at DESC);

-- The durable event bus (emit_event, webhooks, schedules, users, chains, the system).
CREATE TABLE events (
    id                  TEXT PRIMARY KEY,
    event_type          TEXT NOT NULL,
    source_kind         TEXT NOT NULL CHECK (source_kind IN
                            ('persona', 'webhook', 'schedule', 'user', 'chain', 'system', 'watcher')),
    source_id           TEXT,
    source_execution_id TEXT REFERENCES executions(id) ON DELETE SET NULL,
    target_persona_id   TEXT REFERENCES personas(id) ON DELETE SET NULL,
    payload             TEXT NOT NULL DEFAULT '{}',
    status              TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                            ('pending', 'processing', 'delivered', 'skipped', 'failed', 'dead_letter')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    error               TEXT,
    lease_owner         TEXT,
    lease_until         INTEGER,
    next_attempt_at     INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    processed_at        INTEGER
);
CREATE INDEX events_pending ON events (status, next_attempt_at, created_at);
CREATE INDEX events_recent ON events (created_at DESC);

-- agent_memory: what a persona remembers between runs.
CREATE TABLE memories (
    id           TEXT PRIMARY KEY,
    persona_id   TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
    execution_id TEXT REFERENCES executions(id) ON DELETE SET NULL,
    title        TEXT NOT NULL,
    content      TEXT NOT NULL,
    category     TEXT NOT NULL DEFAULT 'general',
    importance   INTEGER NOT NULL DEFAULT 3 CHECK (importance BETWEEN 1 AND 5),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX memories_by_persona ON memories (persona_id, importance DESC, created_at DESC);

-- manual_review: a person's decision an execution waits for.
CREATE TABLE reviews (
    id                TEXT PRIMARY KEY,
    execution_id      TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    persona_id        TEXT REFERENCES personas(id) ON DELETE SET NULL,
    title             TEXT NOT NULL,
    description       TEXT,
    severity          TEXT NOT NULL DEFAULT 'medium',
    suggested_actions TEXT NOT NULL DEFAULT '[]',
    status            TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                          ('pending', 'approved', 'rejected', 'timed_out')),
    decision_note     TEXT,
    created_at        INTEGER NOT NULL,
    decided_at        INTEGER
);
CREATE INDEX reviews_by_status ON reviews (status, created_at);
