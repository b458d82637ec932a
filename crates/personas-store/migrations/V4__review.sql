-- Personas schema, version 4: human review with resume, delivery of messages to channels,
-- healing (scheduled retries, circuit breakers, issues), budgets and daily metrics.
-- Timestamps are INTEGER milliseconds since the Unix epoch (UTC); JSON columns hold TEXT.

-- Executions gain:
-- - resume_session_id / resume_prompt: set when a review decision re-queues a paused execution;
--   the runner then continues the same Claude session (`--resume`) with resume_prompt on stdin.
-- - not_before: the queue does not start the execution earlier (scheduled retries).
-- - retry_attempt: 0 for a first run, n for the n-th scheduled retry of a failure.
-- - healed_at: when the healing bookkeeping (breakers, retries, issues, metrics) processed the
--   ended execution; NULL rows are picked up again after a crash.
ALTER TABLE executions ADD COLUMN resume_session_id TEXT;
ALTER TABLE executions ADD COLUMN resume_prompt TEXT;
ALTER TABLE executions ADD COLUMN not_before INTEGER;
ALTER TABLE executions ADD COLUMN retry_attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN healed_at INTEGER;
UPDATE executions SET healed_at = COALESCE(finished_at, queued_at)
    WHERE status NOT IN ('queued', 'running', 'awaiting_review');
CREATE INDEX executions_unhealed ON executions (finished_at) WHERE healed_at IS NULL;
-- Budgets sum today's spend from these (covering) indexes, earlier days of the month from
-- metrics_daily; metrics read a persona's day.
CREATE INDEX executions_spend ON executions (finished_at, cost_usd);
CREATE INDEX executions_spend_by_persona ON executions (persona_id, finished_at, cost_usd);

-- Reviews gain a deadline with the action taken when it passes, who decided, and a 'cancelled'
-- status (the run ended some other way before anyone decided). SQLite cannot change a CHECK in
-- place, so the table is rebuilt; nothing references it.
CREATE TABLE reviews_v4 (
    id                TEXT PRIMARY KEY,
    execution_id      TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    persona_id        TEXT REFERENCES personas(id) ON DELETE SET NULL,
    title             TEXT NOT NULL,
    description       TEXT,
    severity          TEXT NOT NULL DEFAULT 'medium',
    suggested_actions TEXT NOT NULL DEFAULT '[]',
    status            TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                          ('pending', 'approved', 'rejected', 'timed_out', 'cancelled')),
    decision_note     TEXT,
    created_at        INTEGER NOT NULL,
    decided_at        INTEGER,
    deadline_at       INTEGER,
    timeout_action    TEXT CHECK (timeout_action IS NULL OR timeout_action IN
                          ('approve', 'reject', 'cancel')),
    decided_by        TEXT CHECK (decided_by IS NULL OR decided_by IN ('user', 'timeout', 'system'))
);
INSERT INTO reviews_v4 (id, execution_id, persona_id, title, description, severity,
        suggested_actions, status, decision_note, created_at, decided_at)
    SELECT id, execution_id, persona_id, title, description, severity, suggested_actions, status,
        decision_note, created_at, decided_at
    FROM reviews ORDER BY rowid;
DROP TABLE reviews;
ALTER TABLE reviews_v4 RENAME TO reviews;
CREATE INDEX reviews_by_status ON reviews (status, created_at);
CREATE INDEX reviews_by_execution ON reviews (execution_id, status);
CREATE INDEX reviews_deadline ON reviews (deadline_at) WHERE status = 'pending';

-- Per-persona settings for what this version adds. A persona without a row gets the runtime's
-- defaults (config.toml); each NULL column means "the default".
CREATE TABLE persona_policies (
    persona_id            TEXT PRIMARY KEY REFERENCES personas(id) ON DELETE CASCADE,
    -- How long a review may wait, and what happens then.
    review_timeout_secs   INTEGER CHECK (review_timeout_secs IS NULL OR review_timeout_secs >= 1),
    review_timeout_action TEXT CHECK (review_timeout_action IS NULL OR review_timeout_action IN
                              ('approve', 'reject', 'cancel')),
    -- On reject: resume the session with the rejection ('resume') or end the run ('end').
    on_reject             TEXT CHECK (on_reject IS NULL OR on_reject IN ('resume', 'end')),
    daily_budget_usd      REAL CHECK (daily_budget_usd IS NULL OR daily_budget_usd > 0),
    monthly_budget_usd    REAL CHECK (monthly_budget_usd IS NULL OR monthly_budget_usd > 0),
    -- Consecutive failures that pause the persona (its circuit breaker).
    failure_threshold     INTEGER CHECK (failure_threshold IS NULL OR failure_threshold >= 1),
    -- Scheduled retries of a transient failure.
    max_retries           INTEGER CHECK (max_retries IS NULL OR max_retries >= 0),
    updated_at            INTEGER NOT NULL
) WITHOUT ROWID;

-- Circuit breakers: scope 'provider' (the model API, all personas) or 'persona:<id>'.
-- An open persona breaker pauses the persona until a person resumes it; an open provider
-- breaker holds the queue until open_until, then lets one run probe the API.
CREATE TABLE circuit_breakers (
    scope                TEXT PRIMARY KEY,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    state                TEXT NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open')),
    opened_at            INTEGER,
    open_until           INTEGER,
    times_opened         INTEGER NOT NULL DEFAULT 0,
    reason               TEXT,
    last_execution_id    TEXT,
    updated_at           INTEGER NOT NULL
) WITHOUT ROWID;

-- A failure the runtime cannot fix by retrying, with a plain suggested fix. One open issue per
-- persona and error class; repeats count occurrences.
CREATE TABLE healing_issues (
    id                TEXT PRIMARY KEY,
    persona_id        TEXT REFERENCES personas(id) ON DELETE CASCADE,
    persona_name      TEXT NOT NULL,
    execution_id      TEXT REFERENCES executions(id) ON DELETE SET NULL,
    error_class       TEXT NOT NULL,
    title             TEXT NOT NULL,
    detail            TEXT,
    suggested_fix     TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    occurrences       INTEGER NOT NULL DEFAULT 1,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    resolved_at       INTEGER
);
CREATE UNIQUE INDEX healing_issues_open ON healing_issues (persona_id, error_class)
    WHERE status = 'open';
CREATE INDEX healing_issues_recent ON healing_issues (status, updated_at DESC);

-- Where a persona's messages (and review requests) are delivered. `config` holds no secret:
-- secret fields are references (env:NAME) resolved when sending.
CREATE TABLE notification_channels (
    id         TEXT PRIMARY KEY,
    persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('slack', 'telegram', 'email', 'webhook', 'desktop')),
    config     TEXT NOT NULL DEFAULT '{}',
    enabled    INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (persona_id, name)
);

-- One row per (channel, message or review): the outbox. Retried with backoff until delivered or
-- out of attempts ('failed'); the message itself always stays in the inbox.
CREATE TABLE notification_deliveries (
    id              TEXT PRIMARY KEY,
    channel_id      TEXT NOT NULL REFERENCES notification_channels(id) ON DELETE CASCADE,
    persona_id      TEXT REFERENCES personas(id) ON DELETE SET NULL,
    subject_kind    TEXT NOT NULL CHECK (subject_kind IN ('message', 'review')),
    subject_id      TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    UNIQUE (channel_id, subject_kind, subject_id)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (status, next_attempt_at);
CREATE INDEX notification_deliveries_subject ON notification_deliveries (subject_kind, subject_id);

-- How far the delivery planner has read the messages and reviews tables (by rowid, which grows
-- in commit order under SQLite's single writer). Starts at the end: old rows are not delivered.
CREATE TABLE delivery_cursors (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO delivery_cursors (name, position)
    VALUES ('message', (SELECT COALESCE(MAX(rowid), 0) FROM messages)),
           ('review', (SELECT COALESCE(MAX(rowid), 0) FROM reviews));

-- Daily rollups per persona (UTC days), recomputed from executions whenever one ends.
CREATE TABLE metrics_daily (
    day               TEXT NOT NULL,
    persona_id        TEXT NOT NULL,
    persona_name      TEXT NOT NULL,
    runs              INTEGER NOT NULL,
    completed         INTEGER NOT NULL,
    failed            INTEGER NOT NULL,
    incomplete        INTEGER NOT NULL,
    cancelled         INTEGER NOT NULL,
    timed_out         INTEGER NOT NULL,
    refused           INTEGER NOT NULL,
    duration_p50_ms   INTEGER,
    duration_p95_ms   INTEGER,
    input_tokens      INTEGER NOT NULL,
    output_tokens     INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cost_usd          REAL NOT NULL,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (day, persona_id)
) WITHOUT ROWID;
