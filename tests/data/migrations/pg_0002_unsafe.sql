/* Release 2.4: tidy the orders schema.
   Written in one go; every statement below hurts a rollback or locks a table. */
ALTER TABLE orders ADD COLUMN currency char(3) NOT NULL;

ALTER TABLE orders DROP COLUMN legacy_status;

ALTER TABLE orders RENAME COLUMN total TO total_cents;

ALTER TABLE orders ALTER COLUMN total_cents TYPE bigint USING total_cents::bigint;

ALTER TABLE orders ALTER COLUMN customer_id SET NOT NULL;

CREATE INDEX orders_created_at_idx ON orders (created_at);

ALTER TABLE orders
    ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id);

ALTER TABLE order_notes RENAME TO order_comments;

DROP TABLE IF EXISTS order_archive;
