"""Change records: the Gate2 document (seed 000) as a plan that can be validated and approved.

document.py parses and validates (pure, no printing), approvals.py binds approvals to the
plan's content hash, store.py is where records and their sidecars live.
"""
