ALTER TABLE shop_order ADD COLUMN region varchar(20) NOT NULL;
CREATE INDEX shop_order_x ON shop_order (region);
ALTER TABLE shop_order DROP COLUMN note;
