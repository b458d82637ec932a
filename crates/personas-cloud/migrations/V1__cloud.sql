-- The cloud's state (personas-cloud). Append-only: a change is a new V<n>__*.sql, never an edit.
--
-- Tenancy: every row belongs to a tenant; every query names the tenant it may see. A tenant is
-- a JWT subject (`sub`) or `admin` (the deployment's static admin token).
--
-- Execution lifecycle: an execution has attempts; `executions.attempt` names the current one,
-- and only the current attempt may change it (every update is conditional on it), so a run is
-- never completed twice and a lost attempt's late messages change nothing.
--
-- Consistency with Kafka: whatever must reach a topic is written to `outbox` in the same
-- transaction as the state it describes; it is published after commit and marked, and a relay
-- publishes what a crash left behind (at-least-once; consumers are idempotent by key).

CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    -- The tenant's journal sequence: bumped under this row's lock inside each transaction that
    -- appends to `journal`, so journal numbers are gapless and in commit order per tenant.
    journal_seq   BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE personas (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    -- The persona file as pushed (what `persona export` writes); workers import it as is.
    definition    TEXT NOT NULL,
    revision      INTEGER NOT NULL DEFAULT 1,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

-- A persona's linked credentials: only sealed bytes (AES-256-GCM, deployment master key, AAD
-- naming tenant, persona and credential).
CREATE TABLE credentials (
    tenant_id     TEXT NOT NULL,
    persona_id    TEXT NOT NULL,
    name          TEXT NOT NULL,
    service_type  TEXT NOT NULL,
    sealed        BYTEA NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, persona_id, name),
    FOREIGN KEY (tenant_id, persona_id) REFERENCES personas(tenant_id, id) ON DELETE CASCADE
);

-- The tenant's own Claude credential (OAuth token or API key), sealed.
CREATE TABLE model_credentials (
    tenant_id     TEXT PRIMARY KEY REFERENCES tenants(id),
    kind          TEXT NOT NULL CHECK (kind IN ('oauth_token', 'api_key')),
    sealed        BYTEA NOT NULL,
    set_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Triggers of pushed personas, from their persona files.
CREATE TABLE triggers (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    persona_id    TEXT NOT NULL,
    kind          TEXT NOT NULL,
    config        JSONB NOT NULL,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    -- For cron: the next due time; an orchestrator fires it (FOR UPDATE SKIP LOCKED) and moves it
    -- on in the same transaction as the execution it queues, so it fires once.
    next_fire_at  TIMESTAMPTZ,
    last_fired_at TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, persona_id) REFERENCES personas(tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX triggers_due ON triggers (next_fire_at) WHERE enabled AND next_fire_at IS NOT NULL;
-- Event subscriptions are looked up by type.
CREATE INDEX triggers_event ON triggers (tenant_id, (config->>'event_type')) WHERE kind = 'event';

CREATE TABLE executions (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id),
    persona_id         TEXT NOT NULL,
    persona_name       TEXT NOT NULL,
    -- The local statuses: queued, running, completed, failed, cancelled, …
    status             TEXT NOT NULL,
    trigger            TEXT NOT NULL,
    trigger_ref        TEXT,
    input              JSONB,
    idempotency_key    TEXT,
    -- The current attempt (0 while first queued) and the limit before the dead-letter topic.
    attempt            INTEGER NOT NULL DEFAULT 0,
    max_attempts       INTEGER NOT NULL,
    worker_id          TEXT,
    cancel_requested   BOOLEAN NOT NULL DEFAULT FALSE,
    -- The runner's record of the finished run (cost, tokens, result, errors, …): the fields of
    -- personas_core::Execution as JSON.
    record             JSONB,
    cost_usd           DOUBLE PRECISION NOT NULL DEFAULT 0,
    output_lines       BIGINT NOT NULL DEFAULT 0,
    dead_letter_reason TEXT,
    queued_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at         TIMESTAMPTZ,
    finished_at        TIMESTAMPTZ,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX executions_tenant_recent ON executions (tenant_id, queued_at DESC);
CREATE INDEX executions_open ON executions (status) WHERE status IN ('queued', 'running');

CREATE TABLE attempts (
    execution_id    TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    number          INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('assigned', 'running', 'completed', 'lost', 'cancelled')),
    worker_id       TEXT,
    orchestrator_id TEXT,
    assigned_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    ended_at        TIMESTAMPTZ,
    reason          TEXT,
    PRIMARY KEY (execution_id, number)
);

-- Output lines as the worker's runner produced them (already redacted). Idempotent by
-- (execution, seq): a worker resending after a reconnect stores nothing twice.
CREATE TABLE output_lines (
    execution_id  TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    seq           BIGINT NOT NULL,
    attempt       INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    text          TEXT NOT NULL,
    at            TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

-- What a tenant's client stream carries, numbered per tenant (see tenants.journal_seq). A client
-- resumes with the last number it saw.
CREATE TABLE journal (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    seq           BIGINT NOT NULL,
    -- The personas_cloud_api::stream::ClientEvent as JSON.
    event         JSONB NOT NULL,
    execution_id  TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, seq)
);

CREATE TABLE events (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    id            TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    payload       JSONB,
    source        TEXT NOT NULL,
    executions    JSONB NOT NULL DEFAULT '[]',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX events_recent ON events (tenant_id, created_at DESC);

CREATE TABLE outbox (
    id            BIGSERIAL PRIMARY KEY,
    topic         TEXT NOT NULL,
    key           TEXT NOT NULL,
    payload       JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at  TIMESTAMPTZ
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;

-- Live peers, for get_cluster and for finding whose worker runs what.
CREATE TABLE orchestrators (
    id            TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    workers       INTEGER NOT NULL DEFAULT 0,
    clients       INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE workers (
    id              TEXT PRIMARY KEY,
    orchestrator_id TEXT NOT NULL,
    version         TEXT NOT NULL,
    capacity        INTEGER NOT NULL,
    running         JSONB NOT NULL DEFAULT '[]',
    connected_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Usage per tenant and month, counted once per execution/event (usage_counted holds what was
-- counted, so a replayed message or a failover counts nothing twice).
CREATE TABLE usage (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    month         TEXT NOT NULL,
    executions    BIGINT NOT NULL DEFAULT 0,
    events        BIGINT NOT NULL DEFAULT 0,
    cost_usd      DOUBLE PRECISION NOT NULL DEFAULT 0,
    duration_ms   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, month)
);

CREATE TABLE usage_counted (
    tenant_id     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    ref_id        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, kind, ref_id)
);
