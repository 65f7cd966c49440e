-- Keys may expire: unix seconds, NULL for keys that never do.
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
