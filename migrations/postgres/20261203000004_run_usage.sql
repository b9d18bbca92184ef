-- What a run spent on models: tokens in and out and the cost, added as each call returns,
-- so that a run that fails or is cancelled still shows what it paid for.
ALTER TABLE runs ADD COLUMN tokens_in BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN tokens_out BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
