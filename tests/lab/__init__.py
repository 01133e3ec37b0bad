"""Helpers for tests against the real lab parts (see /work/shared/LAB.md and scripts/lab/).

- tests.lab.docker: the Docker lab's availability (skip, or fail under CI) and small runners.
- tests.lab.images: test images built from busybox-static, pushed to 127.0.0.1:5000.
- tests.lab.fixtures: pytest fixtures (`docker_lab`, `compose_project`); enable them with
  `pytest_plugins = ["tests.lab.fixtures"]` in the top-level tests/conftest.py.
"""
