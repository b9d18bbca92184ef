-- The repositories IsoCrates documents: the branch it follows (none: the repository's
-- default), the folder its pages live under, and the commit last published.
CREATE TABLE repositories (
    id             TEXT PRIMARY KEY,
    repo_url       TEXT NOT NULL UNIQUE,
    branch         TEXT,
    folder         TEXT NOT NULL,
    default_branch TEXT,
    last_commit    TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
