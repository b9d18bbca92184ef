-- Full-text search over title, description, path and content: a weighted tsvector kept by
-- the database itself, with a GIN index. The 'simple' configuration does not stem, and
-- every run of characters other than letters and digits becomes a space first, so words
-- split as SQLite's FTS5 splits them (`main.rs` is `main` and `rs` on both).

ALTER TABLE documents ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', regexp_replace(coalesce(title, ''), '[^[:alnum:]]+', ' ', 'g')), 'A') ||
    setweight(to_tsvector('simple', regexp_replace(coalesce(description, ''), '[^[:alnum:]]+', ' ', 'g')), 'B') ||
    setweight(to_tsvector('simple', regexp_replace(replace(path, '/', ' '), '[^[:alnum:]]+', ' ', 'g')), 'C') ||
    setweight(to_tsvector('simple', regexp_replace(content, '[^[:alnum:]]+', ' ', 'g')), 'D')
) STORED;

CREATE INDEX documents_search ON documents USING GIN (search_vector);
