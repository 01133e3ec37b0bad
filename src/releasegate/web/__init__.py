"""`releasegate serve`: the dashboard (Starlette, server-rendered pages, a JSON API)."""
