"""Shared by every test folder: the Docker lab fixtures (tests/lab)."""

pytest_plugins = ["tests.lab.fixtures"]
