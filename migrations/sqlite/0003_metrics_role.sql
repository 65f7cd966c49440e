-- A third role, `metrics`, reads /metrics only. SQLite cannot change a CHECK constraint in
-- place, so the table is rebuilt with the same columns and rows.
CREATE TABLE api_keys_new (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    tier        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('user', 'admin', 'metrics')),
    secret_hash BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    expires_at  INTEGER
);
INSERT INTO api_keys_new (id, name, tier, role, secret_hash, created_at, revoked_at, expires_at)
    SELECT id, name, tier, role, secret_hash, created_at, revoked_at, expires_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;
