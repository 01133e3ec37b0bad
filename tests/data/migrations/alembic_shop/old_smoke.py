"""The previous release's smoke check: the queries the old code runs, on DATABASE_URL."""

import os

import psycopg

with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    conn.execute("SELECT id, amount FROM invoices ORDER BY id LIMIT 5").fetchall()
    print("old release ok")
