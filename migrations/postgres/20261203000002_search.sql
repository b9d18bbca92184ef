-- Full-text search over title, description, path and content: a weighted tsvector kept by
-- the database itself, with a GIN index. The 'simple' configuration does not stem, so
-- prefix matches behave the same for every language.

ALTER TABLE documents ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', coalesce(title, '')), 'A') ||
    setweight(to_tsvector('simple', coalesce(description, '')), 'B') ||
    setweight(to_tsvector('simple', replace(path, '/', ' ')), 'C') ||
    setweight(to_tsvector('simple', content), 'D')
) STORED;

CREATE INDEX documents_search ON documents USING GIN (search_vector);
