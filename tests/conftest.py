"""Shared by every test folder: the Docker and database lab fixtures (tests/lab)."""

pytest_plugins = ["tests.lab.fixtures", "tests.lab.db_fixtures"]
