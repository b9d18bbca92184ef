-- Spending by calendar month (UTC) as well as by run and model: a monthly budget and the
-- spending of a month count what was spent in that month, whenever its run began. What
-- was spent before this migration is counted in the month its run was created.
CREATE TABLE run_usage_by_month (
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    -- YYYY-MM, in UTC.
    month      TEXT NOT NULL,
    provider   TEXT NOT NULL,
    model      TEXT NOT NULL,
    calls      INTEGER NOT NULL DEFAULT 0,
    tokens_in  INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    cost_usd   REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, month, provider, model)
);
INSERT INTO run_usage_by_month
    (run_id, month, provider, model, calls, tokens_in, tokens_out, cost_usd)
SELECT u.run_id, substr(r.created_at, 1, 7), u.provider, u.model, u.calls, u.tokens_in,
       u.tokens_out, u.cost_usd
FROM run_usage u JOIN runs r ON r.id = u.run_id;
DROP TABLE run_usage;
ALTER TABLE run_usage_by_month RENAME TO run_usage;
CREATE INDEX run_usage_month ON run_usage (month);
