"""Scheduled jobs installed with each release (seed 004): a marked block in a crontab or
/etc/cron.d, rendered and parsed purely (block.py), validated with cronsim
(schedule.py), and installed on every host by programs of operations (install.py)."""
