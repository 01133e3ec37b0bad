-- Seed 002's table (MySQL/MariaDB).
CREATE TABLE Shipment (
  id INT NOT NULL PRIMARY KEY,
  reference VARCHAR(100) NOT NULL
);
