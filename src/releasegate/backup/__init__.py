"""Backups taken before a change; the core backs up a stack's config files."""
