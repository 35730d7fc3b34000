-- conserver-supabase migration 0005: where the change feed's consumers are (issue 16;
-- docs/conserver.md, "The change feed").
--
-- conserver_vcon_feed_cursors: one row per consumer cursor (by default one per Redis the
-- caches live in). watermark is a transaction id: every change of a transaction whose
-- id is below it has been applied to that Redis; rows at or above it are delivered again
-- (applying a change twice does nothing). updated_at: when the consumer last polled;
-- listen: it waits on LISTEN conserver_vcon_changes (the triggers then NOTIFY);
-- seen_pruned: how far the log was pruned when its consumer last flushed its cache for it.
--
-- conserver_vcon_feed_state (one row): the log's bounds and what was pruned.
--   keep_rows       the most changes kept while a consumer polls (older ones are pruned
--                   even if unconsumed; a consumer behind them flushes its cache);
--   keep_rows_idle  the most kept while no consumer polled for a day;
--   idle_cursor     a cursor not polled for this long is dropped (and no longer holds
--                   back the pruning);
--   pruned_below    every change of a transaction below it may have been pruned: a
--                   cursor below it lost changes (conserver_vcon_feed_poll says so).
--
-- Idempotent: safe to run again.

CREATE TABLE IF NOT EXISTS conserver_vcon_feed_cursors (
    name       text PRIMARY KEY CHECK (name <> ''),
    watermark  xid8 NOT NULL,
    listen     boolean NOT NULL DEFAULT false,
    seen_pruned xid8,
    updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE conserver_vcon_feed_cursors ENABLE ROW LEVEL SECURITY;

CREATE TABLE IF NOT EXISTS conserver_vcon_feed_state (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    keep_rows      bigint NOT NULL DEFAULT 1000000 CHECK (keep_rows > 0),
    keep_rows_idle bigint NOT NULL DEFAULT 10000 CHECK (keep_rows_idle > 0),
    idle_cursor    interval NOT NULL DEFAULT interval '7 days',
    pruned_below   xid8
);
ALTER TABLE conserver_vcon_feed_state ENABLE ROW LEVEL SECURITY;
INSERT INTO conserver_vcon_feed_state (id) VALUES (true) ON CONFLICT (id) DO NOTHING;

COMMENT ON TABLE conserver_vcon_feed_cursors IS
    'conserver-supabase: the change feed''s consumer cursors (a transaction watermark each)';
COMMENT ON TABLE conserver_vcon_feed_state IS
    'conserver-supabase: the change log''s bounds (keep_rows, keep_rows_idle, idle_cursor) and what was pruned';

-- Privileges: service_role (and the owner) only; the triggers read the state as their
-- owner (SECURITY DEFINER).
CALL pg_temp.conserver_restrict_to_service_role('TABLE conserver_vcon_feed_cursors');
CALL pg_temp.conserver_restrict_to_service_role('TABLE conserver_vcon_feed_state');
