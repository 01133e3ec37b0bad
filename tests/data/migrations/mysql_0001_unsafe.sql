# Release 3.1 (MariaDB / MySQL 8)
ALTER TABLE `users` ADD COLUMN `locale` VARCHAR(8) NOT NULL AFTER `email`;
ALTER TABLE `users` MODIFY COLUMN `bio` MEDIUMTEXT;
ALTER TABLE `users` CHANGE `fullname` `display_name` VARCHAR(200) NULL;
ALTER TABLE `users` RENAME COLUMN `nick` TO `handle`;
ALTER TABLE `users` ADD INDEX `users_locale_idx` (`locale`), ALGORITHM=INPLACE, LOCK=NONE;
CREATE INDEX users_created_idx ON users (created_at);
RENAME TABLE `sessions` TO `user_sessions`;
INSERT INTO audit_log (msg) VALUES ('it\'s done; really');
