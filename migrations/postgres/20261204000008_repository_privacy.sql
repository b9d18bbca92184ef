-- Whether a repository is private, as GitHub's API last said (NULL: not asked).
ALTER TABLE repositories ADD COLUMN is_private BOOLEAN;
