-- Personas schema, version 3: the credential vault, tools attached to personas, run tokens.
-- Secret values are stored only as AES-256-GCM ciphertext sealed by the engine's vault; the
-- store never sees a key or a plaintext secret (a CHECK makes a plaintext secret unstorable).

-- The vault's key material. One row. The data key itself is never here: it is in the OS keychain
-- (key_source 'keychain') or wrapped under a passphrase-derived key (key_source 'passphrase').
CREATE TABLE vault (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    vault_id    TEXT NOT NULL,
    key_source  TEXT NOT NULL CHECK (key_source IN ('keychain', 'passphrase')),
    -- Incremented by every rotation; sealed values and keychain entries name theirs.
    generation  INTEGER NOT NULL CHECK (generation >= 1),
    kdf         TEXT,
    kdf_params  TEXT,
    salt        BLOB,
    wrapped_key BLOB,
    -- A known constant sealed under the data key: proves a key is the right one before use.
    key_check   BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    rotated_at  INTEGER,
    CHECK (key_source = 'keychain' OR (kdf IS NOT NULL AND salt IS NOT NULL AND wrapped_key IS NOT NULL))
);

CREATE TABLE credentials (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE COLLATE NOCASE,
    kind             TEXT NOT NULL,
    -- {"field": "ENV_NAME"} where the user renamed a field's variable.
    env_overrides    TEXT NOT NULL DEFAULT '{}',
    last_checked_at  INTEGER,
    last_check_ok    INTEGER,
    last_check_error TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE credential_fields (
    credential_id TEXT NOT NULL REFERENCES credentials(id) ON DELETE CASCADE,
    field         TEXT NOT NULL,
    secret        INTEGER NOT NULL CHECK (secret IN (0, 1)),
    plain         TEXT,
    sealed        BLOB,
    generation    INTEGER,
    PRIMARY KEY (credential_id, field),
    CHECK ((secret = 1 AND plain IS NULL AND sealed IS NOT NULL AND generation IS NOT NULL)
        OR (secret = 0 AND sealed IS NULL AND plain IS NOT NULL))
) WITHOUT ROWID;

CREATE TABLE persona_credentials (
    persona_id    TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL REFERENCES credentials(id) ON DELETE CASCADE,
    PRIMARY KEY (persona_id, credential_id)
) WITHOUT ROWID;
CREATE INDEX persona_credentials_by_credential ON persona_credentials (credential_id);

-- The token a run's MCP server proves it acts for that execution with. Only a SHA-256 hash is
-- kept; the token itself exists in the run's MCP config file (mode 0600, removed after the run).
CREATE TABLE run_tokens (
    execution_id TEXT PRIMARY KEY REFERENCES executions(id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
