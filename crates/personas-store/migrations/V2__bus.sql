-- Personas schema, version 2: the durable event bus, triggers, subscriptions and deliveries.
-- Timestamps are INTEGER milliseconds since the Unix epoch (UTC); JSON columns hold TEXT.

-- Events gain: the trigger that fired them, their causal depth (how many executions led to
-- them; bounds chains and event loops), and an optional key that makes publishing idempotent
-- (a cron fire, a chain step, a webhook delivery id can only be published once).
ALTER TABLE events ADD COLUMN trigger_id TEXT;
ALTER TABLE events ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN dedupe_key TEXT;
CREATE UNIQUE INDEX events_dedupe ON events (dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX events_by_source_execution ON events (source_execution_id)
    WHERE source_execution_id IS NOT NULL;
CREATE INDEX events_by_trigger ON events (trigger_id, created_at DESC) WHERE trigger_id IS NOT NULL;

-- What starts a persona besides a person: cron, webhook, event subscription, chain, file watch.
-- `config` is the kind's JSON definition; cron keeps its next due time in `next_fire_at`.
CREATE TABLE triggers (
    id               TEXT PRIMARY KEY,
    persona_id       TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN
                         ('manual', 'cron', 'webhook', 'event', 'chain', 'watch')),
    config           TEXT NOT NULL DEFAULT '{}',
    -- chain: the persona whose end fires this trigger (deleting it removes the chain)
    after_persona_id TEXT REFERENCES personas(id) ON DELETE CASCADE,
    -- webhook: the HMAC-SHA256 key senders sign with
    secret           TEXT,
    enabled          INTEGER NOT NULL DEFAULT 1,
    next_fire_at     INTEGER,
    last_fired_at    INTEGER,
    fire_count       INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    last_error_at    INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX triggers_by_persona ON triggers (persona_id);
CREATE INDEX triggers_chain ON triggers (after_persona_id) WHERE after_persona_id IS NOT NULL;
CREATE INDEX triggers_due ON triggers (kind, enabled, next_fire_at);

-- The matcher's view of event triggers: one row per `event` trigger, with the pattern already
-- normalised so matching needs no parsing.
CREATE TABLE subscriptions (
    trigger_id  TEXT PRIMARY KEY REFERENCES triggers(id) ON DELETE CASCADE,
    persona_id  TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
    pattern     TEXT NOT NULL,
    match_key   TEXT NOT NULL,
    is_prefix   INTEGER NOT NULL,
    source_kind TEXT,
    source_id   TEXT,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX subscriptions_by_persona ON subscriptions (persona_id);

-- One row per (event, recipient): which execution a delivery created, or why it did not.
-- `target` is the subscription's trigger id, or 'target' for an event addressed to one persona.
CREATE TABLE event_deliveries (
    event_id     TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    target       TEXT NOT NULL,
    persona_id   TEXT REFERENCES personas(id) ON DELETE SET NULL,
    persona_name TEXT NOT NULL,
    execution_id TEXT REFERENCES executions(id) ON DELETE SET NULL,
    status       TEXT NOT NULL CHECK (status IN ('delivered', 'failed', 'skipped')),
    error        TEXT,
    attempt      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (event_id, target)
) WITHOUT ROWID;

-- Change counters: the dispatcher caches subscriptions and the scheduler caches triggers; both
-- re-read when a counter moves, whichever process made the change.
CREATE TABLE bus_state (
    name    TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO bus_state (name, version) VALUES ('subscriptions', 0), ('triggers', 0);

CREATE TRIGGER subscriptions_changed_insert AFTER INSERT ON subscriptions BEGIN
    UPDATE bus_state SET version = version + 1 WHERE name = 'subscriptions';
END;
CREATE TRIGGER subscriptions_changed_delete AFTER DELETE ON subscriptions BEGIN
    UPDATE bus_state SET version = version + 1 WHERE name = 'subscriptions';
END;
-- Firing a trigger updates its counters and due time; only definition changes count.
CREATE TRIGGER triggers_changed_insert AFTER INSERT ON triggers BEGIN
    UPDATE bus_state SET version = version + 1;
END;
CREATE TRIGGER triggers_changed_delete AFTER DELETE ON triggers BEGIN
    UPDATE bus_state SET version = version + 1;
END;
CREATE TRIGGER triggers_changed_update AFTER UPDATE OF enabled, config, persona_id ON triggers BEGIN
    UPDATE bus_state SET version = version + 1;
END;
-- A persona's enabled flag decides whether its subscriptions and schedules are live.
CREATE TRIGGER personas_enabled_changed AFTER UPDATE OF enabled ON personas BEGIN
    UPDATE bus_state SET version = version + 1;
END;
CREATE TRIGGER personas_deleted AFTER DELETE ON personas BEGIN
    UPDATE bus_state SET version = version + 1;
END;
