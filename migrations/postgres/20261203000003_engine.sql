-- The workflow engine's own record of runs, so the operator view does not depend on the
-- task queue's internal schema: one row per run, one per step attempt, the checkpoint of
-- each finished step and of each finished item inside a step that fans out.

CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
    workflow         TEXT NOT NULL,
    input            JSONB NOT NULL,
    -- Runs with the same dedup key while one is queued or running are one run.
    dedup_key        TEXT,
    -- At most one run per concurrency key runs at a time (a repository).
    concurrency_key  TEXT,
    status           TEXT NOT NULL,
    current_step     BIGINT NOT NULL DEFAULT 0,
    attempt          BIGINT NOT NULL DEFAULT 1,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    -- The token of the one step task that may continue the run; a task with another token
    -- is stale (left over from before a cancel or a retry) and does nothing.
    task_token       TEXT,
    trigger          TEXT NOT NULL,
    error            TEXT,
    retry_count      BIGINT NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_status ON runs (status);
CREATE INDEX runs_dedup ON runs (dedup_key, status);
CREATE INDEX runs_concurrency ON runs (concurrency_key, status);

CREATE TABLE run_steps (
    run_id         TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    -- How many operator retries came before this attempt (the run's retry_count then).
    round          BIGINT NOT NULL,
    step_index     BIGINT NOT NULL,
    step           TEXT NOT NULL,
    attempt        BIGINT NOT NULL,
    status         TEXT NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ,
    error          TEXT,
    output_summary TEXT,
    worker         TEXT,
    PRIMARY KEY (run_id, round, step_index, attempt)
);

CREATE TABLE run_checkpoints (
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_index BIGINT NOT NULL,
    output     JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, step_index)
);

CREATE TABLE run_items (
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_index BIGINT NOT NULL,
    item_key   TEXT NOT NULL,
    output     JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, step_index, item_key)
);

-- One row per tick of a schedule that started a run, so that several processes running
-- the same schedule start one run per tick between them.
CREATE TABLE schedule_ticks (
    schedule TEXT NOT NULL,
    tick     BIGINT NOT NULL,
    run_id   TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    PRIMARY KEY (schedule, tick)
);
