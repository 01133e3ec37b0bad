"""How a run reaches a stack's hosts: one executor for one host and many (hosts.py), the
batches (rollout.py), and the safe points where an interruption ends a run (interrupts.py)."""
