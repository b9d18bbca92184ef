-- One embedding per document: the vector (little-endian f32s) of its title, description
-- and content, made by `model` at the document's `version`.
CREATE TABLE embeddings (
    doc_id     TEXT PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    model      TEXT NOT NULL,
    dims       INTEGER NOT NULL,
    vector     BLOB NOT NULL,
    version    INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
