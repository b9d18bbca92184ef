-- The worst cost of each model call let through by a budget and not yet recorded in
-- run_usage. Budgets count these beside what was recorded, so that the calls under way in
-- every run, on every worker, cannot together carry spending past a cap. A hold goes when
-- its call's spending is recorded, when a step of its run starts or ends, when its run
-- stops, or at its expiry.
CREATE TABLE spending_holds (
    id         TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    cost_usd   DOUBLE PRECISION NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX spending_holds_run ON spending_holds (run_id);
