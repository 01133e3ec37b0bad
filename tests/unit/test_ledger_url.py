"""`state:` URLs: a password in the config is refused, the engine gets it from the
environment, bare postgresql:// runs on psycopg, a missing driver names the extra."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasegate.config.locate import quick_state_url
from releasegate.ledger import url as lurl


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ("postgresql+psycopg://rg@db.example:5432/ledger", False),
        ("postgresql+psycopg://rg@db.example/ledger?sslmode=require", False),
        ("postgresql+psycopg://rg:s3cret@db.example/ledger", True),
        ("postgresql+psycopg://rg:@db.example/ledger", True),  # an empty one too
        ("postgresql+psycopg://rg@db.example/ledger?password=s3cret", True),
        ("postgresql+psycopg://rg@db.example/ledger?PassFile=/x", True),
        ("postgresql://rg@db.example:99999/ledger", True),  # not a URL at all
    ],
)
def test_password_problem(value: str, refused: bool) -> None:
    problem = lurl.password_problem(value)
    assert (problem is not None) is refused
    if problem:
        assert "s3cret" not in problem


def test_engine_url_takes_the_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(lurl.PASSWORD_ENV, raising=False)
    bare = lurl.engine_url("postgresql://rg@127.0.0.1:15432/led")
    assert bare.drivername == "postgresql+psycopg"
    assert bare.password is None  # libpq then reads PGPASSWORD / PGPASSFILE itself
    monkeypatch.setenv(lurl.PASSWORD_ENV, "from-env")
    assert lurl.engine_url("postgres://rg@127.0.0.1/led").password == "from-env"
    sqlite = lurl.engine_url("sqlite:///x.db")
    assert sqlite.password is None and sqlite.get_backend_name() == "sqlite"


def test_engine_options_bound_every_wait() -> None:
    opts = lurl.engine_options(lurl.engine_url("postgresql+psycopg://rg@h/led"))
    args = opts["connect_args"]
    assert args["connect_timeout"] > 0
    assert "lock_timeout=" in args["options"] and "statement_timeout=" in args["options"]
    assert lurl.engine_options(lurl.engine_url("sqlite:///x.db")) == {}


def test_missing_driver_names_the_extra() -> None:
    err = lurl.missing_driver(
        lurl.engine_url("postgresql+psycopg://rg@h/led"), ModuleNotFoundError(name="psycopg")
    )
    assert "psycopg" in err.message and "releasegate[postgres]" in err.hint


def test_config_refuses_a_password_with_file_and_line(tmp_path: Path) -> None:
    from releasegate.config.loader import load_config
    from releasegate.errors import ConfigError

    cfg = tmp_path / "releasegate.yaml"
    cfg.write_text(
        "state: postgresql+psycopg://rg:hunter2@127.0.0.1/led\n"
        "stacks:\n  web:\n    env: staging\n    runtime: releases\n    dir: ./srv\n"
        "    artifacts: ./artifacts\n"
    )
    assert quick_state_url(cfg) is None  # read-only commands fall back to the full loader
    with pytest.raises(ConfigError) as caught:
        load_config(cfg)
    assert ":1" in caught.value.message and "RELEASEGATE_STATE_PASSWORD" in caught.value.message
    assert "hunter2" not in caught.value.message
    cfg.write_text(cfg.read_text().replace("rg:hunter2@", "rg@"))
    assert quick_state_url(cfg) == "postgresql+psycopg://rg@127.0.0.1/led"
    assert load_config(cfg).state_url == "postgresql+psycopg://rg@127.0.0.1/led"


def test_named_parameters_for_psycopg() -> None:
    from releasegate.ledger.db import to_pyformat

    assert to_pyformat("SELECT a FROM t WHERE s = :stack AND x::text = :x_1") == (
        "SELECT a FROM t WHERE s = %(stack)s AND x::text = %(x_1)s"
    )
    assert to_pyformat("SELECT '50%' WHERE a = :a") == "SELECT '50%%' WHERE a = %(a)s"


def test_libpq_params_take_the_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(lurl.PASSWORD_ENV, "from-env")
    conninfo, params, shown = lurl.libpq_params("postgresql+psycopg://rg@127.0.0.1:5/led")
    assert conninfo == "postgresql://rg@127.0.0.1:5/led"
    assert params["password"] == "from-env" and params["connect_timeout"] > 0
    assert "from-env" not in shown
    monkeypatch.delenv(lurl.PASSWORD_ENV)
    assert "password" not in lurl.libpq_params("postgresql://rg@h/led")[1]
    assert lurl.uses_psycopg("postgresql+psycopg://h/x") and not lurl.uses_psycopg(
        "postgresql+psycopg2://h/x"
    )
