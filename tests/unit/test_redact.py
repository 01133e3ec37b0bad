from releasegate.redact import MASK, Redactor, read_env_file


def test_secret_values_from_env_are_masked():
    r = Redactor.from_env(
        {"DB_PASSWORD": "hunter2hunter2", "PORT": "8080", "API_TOKEN": "tok-123456"}
    )
    out = r("connecting with hunter2hunter2 on 8080, token tok-123456")
    assert "hunter2hunter2" not in out and "tok-123456" not in out
    assert "8080" in out and out.count(MASK) == 2


def test_shapes_are_masked_without_knowing_the_value():
    r = Redactor()
    assert r("postgresql://app:s3cr3t@db:5432/x") == f"postgresql://app:{MASK}@db:5432/x"
    assert r("password=abc123 next") == f"password={MASK} next"
    assert r("MYSQL_ROOT_PASSWORD: zzz") == f"MYSQL_ROOT_PASSWORD: {MASK}"


def test_short_values_are_not_masked_everywhere():
    r = Redactor(["ab"])
    assert r("about a cab") == "about a cab"


def test_read_env_file():
    text = "# c\nexport A=1\nB='two words'\nC=\"x=y\"\n\nbad line\n"
    assert read_env_file(text) == {"A": "1", "B": "two words", "C": "x=y"}
