-- Seed 002: the column that was added by hand in production before this ran.
ALTER TABLE Shipment ADD COLUMN shipmentFile VARCHAR(191) NULL;
