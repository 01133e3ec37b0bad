-- Additive only.
ALTER TABLE `users` ADD COLUMN `timezone` VARCHAR(64) NULL DEFAULT NULL;
CREATE TABLE `user_prefs` (
  `user_id` BIGINT NOT NULL,
  `name` VARCHAR(64) NOT NULL,
  `value` TEXT,
  PRIMARY KEY (`user_id`, `name`)
) ENGINE=InnoDB;
ALTER TABLE `user_prefs` ADD COLUMN `scope` VARCHAR(16) NOT NULL;
