-- AI text kept beside a page that a person wrote last: the documentation workflow never
-- overwrites such a page, and a person accepts or dismisses what it proposed.
CREATE TABLE proposals (
    id              TEXT PRIMARY KEY,
    doc_id          TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    content         TEXT NOT NULL,
    description     TEXT,
    author_metadata JSONB,
    status          TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    decided_at      TIMESTAMPTZ,
    decided_by      TEXT
);

CREATE INDEX proposals_by_document ON proposals (doc_id, created_at);
