-- What each model spent within a run, beside the run's totals: the calls, tokens and cost
-- by provider and model, for the metrics and for spending by model.
CREATE TABLE run_usage (
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    provider   TEXT NOT NULL,
    model      TEXT NOT NULL,
    calls      INTEGER NOT NULL DEFAULT 0,
    tokens_in  INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    cost_usd   REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, provider, model)
);
