"""Gates: checks that must pass before a step. Each returns CheckResults as evidence."""
