-- The same intent as 0002, done in backward-compatible steps.
ALTER TABLE orders ADD COLUMN currency char(3) DEFAULT 'EUR' NOT NULL;
ALTER TABLE orders
    ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id)
    REFERENCES customers (id) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_fk;
CREATE INDEX CONCURRENTLY orders_created_at_idx ON orders (created_at);
ALTER TABLE orders ALTER COLUMN note DROP NOT NULL;
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_legacy_check;
