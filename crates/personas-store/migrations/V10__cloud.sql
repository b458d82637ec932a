-- Personas schema, version 10: the connection to a Personas cloud and the mirrors of its runs.
--
-- A cloud run is mirrored into `executions` under the cloud's execution id with
-- `trigger_kind = 'cloud'` (what the UI sees: it ran in the cloud); the queue, the admission
-- counts and crash recovery skip those rows, since no local process runs them.

-- The one orchestrator this data dir is connected to. The bearer token is sealed by the vault
-- (AES-256-GCM under the data key, which is not in this database); a plaintext token cannot be
-- stored here at all: there is no column for one.
CREATE TABLE cloud_connection (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    url           TEXT NOT NULL,
    token_sealed  BLOB NOT NULL,
    -- The vault generation the token is sealed under; a rotation re-seals it.
    generation    INTEGER NOT NULL CHECK (generation >= 1),
    tenant_id     TEXT NOT NULL,
    subject       TEXT NOT NULL,
    connected_at  INTEGER NOT NULL
);

-- Where each mirror is: the last journal number of the cloud's client stream it applied (a
-- resumed stream starts after it) and whether the run ended (its row then holds the result).
CREATE TABLE cloud_mirrors (
    execution_id  TEXT PRIMARY KEY REFERENCES executions(id) ON DELETE CASCADE,
    url           TEXT NOT NULL,
    journal_seq   INTEGER NOT NULL DEFAULT 0,
    done          INTEGER NOT NULL DEFAULT 0,
    -- The last reason following it failed (an unreachable orchestrator), cleared on progress.
    last_error    TEXT,
    created_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX cloud_mirrors_pending ON cloud_mirrors (done, created_at);
