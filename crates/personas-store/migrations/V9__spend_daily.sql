-- One rollup of executions, not two. Run statistics (`get_stats`) are SQL aggregates over the
-- executions table in the viewer's time zone; the per-persona UTC rollup `metrics_daily` only
-- duplicated them. What budgets need from it stays: each persona's spend per UTC day, so a
-- monthly cap reads at most 31 rows instead of a month of executions.
CREATE TABLE spend_daily (
    day        TEXT NOT NULL,
    persona_id TEXT NOT NULL,
    cost_usd   REAL NOT NULL,
    PRIMARY KEY (day, persona_id)
) WITHOUT ROWID;
INSERT INTO spend_daily (day, persona_id, cost_usd)
    SELECT day, persona_id, cost_usd FROM metrics_daily;
DROP TABLE metrics_daily;
