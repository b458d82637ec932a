-- Personas schema, version 5: webhook secrets move into the vault; deliveries are deduplicated.
--
-- A webhook trigger's HMAC key was kept in plaintext in `triggers.secret`. From now on it is
-- sealed by the engine's vault (AES-256-GCM under the data key, which is not in this database),
-- so this migration cannot seal the old ones itself: it makes plaintext unstorable, and the
-- engine seals any left over at start-up and empties the column (see `personas_engine::triggers`).

CREATE TABLE webhook_secrets (
    trigger_id  TEXT PRIMARY KEY REFERENCES triggers(id) ON DELETE CASCADE,
    sealed      BLOB NOT NULL,
    -- The vault generation it is sealed under; a rotation re-seals every row.
    generation  INTEGER NOT NULL CHECK (generation >= 1),
    created_at  INTEGER NOT NULL,
    rotated_at  INTEGER
) WITHOUT ROWID;

-- Deliveries a webhook accepted, by trigger and key (the signature, or GitHub's delivery id):
-- a second request with the same key is a replay and is refused. Rows are pruned once their
-- signed timestamp has left the acceptance window.
CREATE TABLE webhook_deliveries (
    trigger_id   TEXT NOT NULL REFERENCES triggers(id) ON DELETE CASCADE,
    delivery_key TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (trigger_id, delivery_key)
) WITHOUT ROWID;
CREATE INDEX webhook_deliveries_by_expiry ON webhook_deliveries (expires_at);

-- GitHub-format triggers (`X-Hub-Signature-256`) keep their format in `config`; nothing here.

-- No new plaintext secret can be written to the old column.
CREATE TRIGGER triggers_secret_insert_refused BEFORE INSERT ON triggers
WHEN NEW.secret IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'webhook secrets are kept sealed in webhook_secrets, never in triggers.secret');
END;

CREATE TRIGGER triggers_secret_update_refused BEFORE UPDATE OF secret ON triggers
WHEN NEW.secret IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'webhook secrets are kept sealed in webhook_secrets, never in triggers.secret');
END;
