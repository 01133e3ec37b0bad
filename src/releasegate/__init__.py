"""releasegate: gated, audited and reversible production changes."""

__version__ = "0.1.0"
