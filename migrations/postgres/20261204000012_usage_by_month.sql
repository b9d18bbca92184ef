-- Spending by calendar month (UTC) as well as by run and model: a monthly budget and the
-- spending of a month count what was spent in that month, whenever its run began. What
-- was spent before this migration is counted in the month its run was created.
ALTER TABLE run_usage ADD COLUMN month TEXT;
UPDATE run_usage u SET month = to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM')
FROM runs r WHERE r.id = u.run_id;
ALTER TABLE run_usage ALTER COLUMN month SET NOT NULL;
ALTER TABLE run_usage DROP CONSTRAINT run_usage_pkey;
ALTER TABLE run_usage ADD PRIMARY KEY (run_id, month, provider, model);
CREATE INDEX run_usage_month ON run_usage (month);
