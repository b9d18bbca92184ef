-- The document store, users and grants.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT,
    role          TEXT NOT NULL,
    is_active     BOOLEAN NOT NULL DEFAULT TRUE,
    is_service    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- One row, written by the registration that creates the first admin; its primary key makes
-- the first registration win even when two arrive at once.
CREATE TABLE bootstrap (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    admin_user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE grants (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path_prefix TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, path_prefix)
);

CREATE TABLE documents (
    id               TEXT PRIMARY KEY,
    repo_url         TEXT,
    repo_name        TEXT,
    -- Byte order, as SQLite sorts, so lists page the same on both backends.
    path             TEXT COLLATE "C" NOT NULL,
    title            TEXT COLLATE "C" NOT NULL,
    -- Lower-cased, hyphens read as spaces: what wikilink resolution compares.
    title_key        TEXT NOT NULL,
    repo_key         TEXT,
    content          TEXT NOT NULL,
    doc_type         TEXT NOT NULL DEFAULT '',
    keywords         JSONB NOT NULL DEFAULT '[]',
    description      TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    generation_count BIGINT NOT NULL DEFAULT 1,
    version          BIGINT NOT NULL DEFAULT 1,
    deleted_at       TIMESTAMPTZ,
    is_indexed       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX documents_path_title ON documents (path, title);
CREATE INDEX documents_title ON documents (title);
CREATE INDEX documents_title_key ON documents (title_key);
CREATE INDEX documents_repo_key ON documents (repo_key);
CREATE INDEX documents_repo_url ON documents (repo_url);
CREATE INDEX documents_updated_at ON documents (updated_at);
CREATE INDEX documents_deleted_at ON documents (deleted_at);

CREATE TABLE versions (
    version_id      TEXT PRIMARY KEY,
    doc_id          TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    number          BIGINT NOT NULL,
    content         TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    author_type     TEXT NOT NULL,
    author_metadata JSONB,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (doc_id, number)
);

-- Every [[wikilink]] a document's content holds, resolved or not, so that a target that
-- appears later repairs the links that wait for it.
CREATE TABLE wikilinks (
    doc_id     TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    position   BIGINT NOT NULL,
    target     TEXT NOT NULL,
    target_key TEXT NOT NULL,
    link_text  TEXT,
    section    TEXT,
    PRIMARY KEY (doc_id, position)
);
CREATE INDEX wikilinks_target_key ON wikilinks (target_key);

CREATE TABLE dependencies (
    id          TEXT PRIMARY KEY,
    from_doc_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    to_doc_id   TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    link_type   TEXT NOT NULL,
    link_text   TEXT,
    section     TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    -- Added through the API rather than drawn from content; saving never removes it.
    manual      BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (from_doc_id, to_doc_id, link_type)
);
CREATE INDEX dependencies_to ON dependencies (to_doc_id);

CREATE TABLE folders (
    id          TEXT PRIMARY KEY,
    path        TEXT NOT NULL UNIQUE,
    description TEXT,
    icon        TEXT,
    sort_order  BIGINT NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE personal_folders (
    folder_id  TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    parent_id  TEXT REFERENCES personal_folders (folder_id) ON DELETE CASCADE,
    sort_order BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX personal_folders_name ON personal_folders (user_id, coalesce(parent_id, ''), name);

CREATE TABLE personal_refs (
    ref_id      TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    folder_id   TEXT NOT NULL REFERENCES personal_folders (folder_id) ON DELETE CASCADE,
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    sort_order  BIGINT NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (folder_id, document_id)
);

CREATE TABLE audit_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    actor_id   TEXT,
    action     TEXT NOT NULL,
    target     TEXT,
    details    JSONB,
    request_id TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
