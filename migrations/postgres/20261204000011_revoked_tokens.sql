-- Tokens ended before their expiry (a web session signed out), kept until they would
-- have expired anyway.
CREATE TABLE revoked_tokens (
    token_id   TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
