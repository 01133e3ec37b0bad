"""Shared by every test folder: the Docker, database and SSH lab fixtures (tests/lab)."""

pytest_plugins = ["tests.lab.fixtures", "tests.lab.db_fixtures", "tests.lab.ssh_fixtures"]
