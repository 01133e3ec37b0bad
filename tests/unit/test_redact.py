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


def test_urls_are_masked_by_shape():
    from releasegate.redact import mask_url, url_secrets

    cases = {
        "http://user:s3cret@127.0.0.1:80/health?token=abc123&x=1": (
            f"http://user:{MASK}@127.0.0.1:80/health?token={MASK}&x=1"
        ),
        "https://ghp_abcdef@github.com/o/r?page=2": f"https://{MASK}@github.com/o/r?page=2",
        "http://u:p@ss@h/x#access_token=zz&y=2": f"http://u:{MASK}@h/x#access_token={MASK}&y=2",
        "http://h/p?api_key=k1&Signature=bb&X-Amz-Credential=c&sort=asc": (
            f"http://h/p?api_key={MASK}&Signature={MASK}&X-Amz-Credential={MASK}&sort=asc"
        ),
        "http://h/p?auth=&next=/": "http://h/p?auth=&next=/",
        "ssh://deploy@web1:2222": "ssh://deploy@web1:2222",
    }
    for url, shown in cases.items():
        assert mask_url(url) == shown, url
    assert url_secrets("http://u:p%40ss@h/?token=a%2Fb") == ["a%2Fb", "a/b", "p%40ss", "p@ss"]
    # in free text too: command output, error messages
    out = Redactor()("GET http://a:pw1234@h/x?session_id=s9 failed; retry ?key=k&ok=1")
    assert out == f"GET http://a:{MASK}@h/x?session_id={MASK} failed; retry ?key={MASK}&ok=1"
