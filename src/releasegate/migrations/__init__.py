"""Database migrations: status, drift, rehearsal, lint (issue 7). For now: the SQL linter."""
