"""The workflows: each plan run step by step on a stack's hosts."""
