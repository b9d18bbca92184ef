-- Full-text search over title, description, path and content: an FTS5 index that reads its
-- text from `documents` and is kept current by triggers. Accents are kept, as PostgreSQL's
-- 'simple' configuration keeps them.

CREATE VIRTUAL TABLE documents_fts USING fts5(
    title, description, path, content,
    content = 'documents', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER documents_fts_insert AFTER INSERT ON documents BEGIN
    INSERT INTO documents_fts (rowid, title, description, path, content)
    VALUES (new.seq, new.title, new.description, new.path, new.content);
END;

CREATE TRIGGER documents_fts_delete AFTER DELETE ON documents BEGIN
    INSERT INTO documents_fts (documents_fts, rowid, title, description, path, content)
    VALUES ('delete', old.seq, old.title, old.description, old.path, old.content);
END;

CREATE TRIGGER documents_fts_update AFTER UPDATE OF title, description, path, content ON documents BEGIN
    INSERT INTO documents_fts (documents_fts, rowid, title, description, path, content)
    VALUES ('delete', old.seq, old.title, old.description, old.path, old.content);
    INSERT INTO documents_fts (rowid, title, description, path, content)
    VALUES (new.seq, new.title, new.description, new.path, new.content);
END;

INSERT INTO documents_fts (documents_fts) VALUES ('rebuild');
