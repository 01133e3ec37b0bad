"""Fleets: one stack on many SSH hosts, rolled out in batches and rolled back whole."""
