-- Backward-compatible (seed 003's rule): new columns nullable, new tables only.
BEGIN;

ALTER TABLE customers ADD COLUMN loyalty_tier text NULL;
ALTER TABLE customers ADD COLUMN referred_by bigint;

CREATE TABLE loyalty_events (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    kind text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX loyalty_events_customer_idx ON loyalty_events (customer_id);

CREATE INDEX CONCURRENTLY IF NOT EXISTS customers_tier_idx ON customers (loyalty_tier);

COMMENT ON COLUMN customers.loyalty_tier IS 'bronze; silver; gold -- set by the loyalty job';

CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger AS $body$
BEGIN
    -- not a migration statement: ALTER TABLE customers DROP COLUMN email;
    NEW.updated_at := now();
    RETURN NEW;
END;
$body$ LANGUAGE plpgsql;

COMMIT;
