-- The PostgreSQL store's schema: the SQLite store's tables (sqlite.rs) in PostgreSQL's types.
CREATE TABLE IF NOT EXISTS reports (
    report_id     TEXT PRIMARY KEY,
    received_at   BIGINT NOT NULL,   -- Unix ms, the collector's clock
    started_at    BIGINT NOT NULL,   -- Unix ms, the agent's clock
    instance_key  TEXT NOT NULL,     -- instance id, else "host:<hostname>"
    instance_id   TEXT,
    hostname      TEXT,
    account       TEXT,
    region        TEXT,
    vpc_id        TEXT,
    subnet_id     TEXT,
    az            TEXT,
    status        TEXT NOT NULL,     -- healthy | problems
    exit_code     BIGINT NOT NULL,
    summary       TEXT NOT NULL,
    root_causes   TEXT NOT NULL,     -- "CODE target" per root cause, one per line
    path_kinds    TEXT NOT NULL,     -- "target=kind" per target, one per line
    token_label   TEXT NOT NULL,
    tool_version  TEXT NOT NULL,
    changed       BOOLEAN NOT NULL   -- verdict or root causes differ from the previous report
);
CREATE INDEX IF NOT EXISTS reports_by_instance ON reports(instance_key, started_at);
CREATE INDEX IF NOT EXISTS reports_by_received ON reports(received_at);
CREATE TABLE IF NOT EXISTS bodies (
    report_id TEXT PRIMARY KEY REFERENCES reports(report_id) ON DELETE CASCADE,
    json      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS findings (
    report_id TEXT NOT NULL REFERENCES reports(report_id) ON DELETE CASCADE,
    ord       INTEGER NOT NULL,      -- the finding's place in its report (SQLite: rowid)
    code      TEXT NOT NULL,
    target    TEXT NOT NULL,
    severity  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_by_report ON findings(report_id);
CREATE INDEX IF NOT EXISTS findings_by_code ON findings(code);
CREATE TABLE IF NOT EXISTS instances (
    instance_key     TEXT PRIMARY KEY,
    latest_report    TEXT NOT NULL,
    latest_started   BIGINT NOT NULL,
    first_received   BIGINT NOT NULL,
    last_received    BIGINT NOT NULL,
    interval_ms      BIGINT,           -- smoothed gap between started_at of successive reports
    reports          BIGINT NOT NULL
);
