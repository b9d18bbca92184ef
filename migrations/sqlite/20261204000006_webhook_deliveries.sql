-- The job each GitHub delivery started, so that a redelivery returns the same job.
CREATE TABLE webhook_deliveries (
    delivery_id TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
