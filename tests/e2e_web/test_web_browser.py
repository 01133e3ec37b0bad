"""The dashboard in a real headless browser (Debian's chromium, Selenium) against
`releasegate serve` on loopback over a demo workspace: sign in, the stacks with their
versions, a CLI deploy followed live, approvals that let `change run` proceed, a POST
without its CSRF token refused, a viewer who cannot roll back, and screenshots at desktop
and phone widths (kept under tests/artifacts/web/)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli import RELEASEGATE
from tests.e2e_web.browser import ARTIFACTS, DESKTOP, PHONE, chrome, wait_for
from tests.e2e_web.conftest import FLAG, PASSWORD, Server, Workspace, features

pytestmark = pytest.mark.e2e


@pytest.fixture()
def browser() -> Iterator[Any]:
    driver = chrome()
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver: Any, server: Server, user: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(server.url + "/")
    assert "/login" in driver.current_url
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "signin").click()
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".me"), what="signed in")
    assert f"{user} (" in driver.find_element(By.CSS_SELECTOR, ".me").text


def shoot(driver: Any, name: str, size: tuple[int, int]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(*size)
    time.sleep(0.3)  # let the layout settle at the new width
    path = ARTIFACTS / f"{name}-{size[0]}.png"
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 5000
    print(f"screenshot: {path}")
    # Nothing wider than the window: a phone needs no sideways scrolling of the page.
    wide = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert wide <= 1, f"{name} at {size[0]} px is {wide} px too wide"


def test_sign_in_stacks_and_screenshots(browser: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, server, "alice")
    for stack in ("web-staging", "web-prod"):
        card = browser.find_element(By.ID, f"stack-{stack}")
        assert card.find_element(By.CSS_SELECTOR, ".running").text == "v2"
        assert card.find_element(By.CSS_SELECTOR, ".verified").text == "v2"
    assert "intact" in browser.find_element(By.ID, "audit").text
    print(f"screenshots kept in {ARTIFACTS}")
    shoot(browser, "stacks", DESKTOP)
    shoot(browser, "stacks", PHONE)
    browser.get(server.url + "/history")
    assert "refused" in browser.find_element(By.ID, "history").text
    shoot(browser, "history", DESKTOP)
    shoot(browser, "history", PHONE)


def test_a_cli_deploy_shows_its_steps_live(
    browser: Any, server: Server, workspace: Workspace
) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, server, "vic")
    browser.get(server.url + "/")
    wait_for(lambda: browser.execute_script("return document.readyState") == "complete")
    pause = workspace.root / "pause-smoke"
    env = {**workspace.env("dora"), "RELEASEGATE_PAUSE_AT": "smoke",
           "RELEASEGATE_PAUSE_FILE": str(pause)}  # fmt: skip
    deploy = subprocess.Popen(
        [RELEASEGATE, "deploy", "web-staging", "staging", "v1"], cwd=workspace.root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(pause.exists, 60, "the deploy reached its smoke step")
        live = browser.find_element(By.ID, "live")
        # The steps so far appeared on the open page without a reload.
        wait_for(lambda: "switch v1 success" in live.text, 30, f"live steps: {live.text!r}")
        assert "web-staging deploy v1 started" in live.text
        # The run's own page follows it too: its status turns from running to success.
        api = json.loads(
            subprocess.run(
                ["curl", "-s", "-H", f"Authorization: Bearer {workspace.tokens['vic']}",
                 server.url + "/api/history?stack=web-staging&status=running"],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout
        )  # fmt: skip
        run = api["actions"][0]
        assert run["user"] == "dora" and run["version"] == "v1"
        browser.get(server.url + f"/runs/{run['action_id']}")
        assert browser.find_element(By.ID, "status").text == "running"
        steps = browser.find_element(By.ID, "steps")
        before = steps.text
        pause.unlink()  # let the deploy go on
        wait_for(lambda: browser.find_element(By.ID, "status").text == "success", 60)
        assert "smoke" in steps.text and steps.text != before
    finally:
        if pause.exists():
            pause.unlink()
        out, err = deploy.communicate(timeout=120)
    assert deploy.returncode == 0, out + err


def test_a_second_approval_lets_change_run_proceed(
    browser: Any, server: Server, workspace: Workspace
) -> None:
    from selenium.webdriver.common.by import By

    workspace.plan("CR-BROWSER-1", "HIGH", payload="web")
    early = workspace.rg("change", "run", "CR-BROWSER-1", user="carol")
    assert early.returncode == 3, early.stdout + early.stderr  # not approved: refused
    for n, approver in enumerate(("amy", "bob"), 1):
        sign_in(browser, server, approver)
        browser.get(server.url + "/changes/CR-BROWSER-1")
        browser.find_element(By.NAME, "comment").send_keys(f"looked at it, {approver}")
        browser.find_element(By.ID, "approve").click()
        wait_for(lambda: browser.find_elements(By.ID, "outcome"))
        assert f"{approver} approved CR-BROWSER-1" in browser.find_element(By.ID, "outcome").text
        assert f"{n}/2" in browser.page_source
        if n == 1:
            still = workspace.rg("change", "run", "CR-BROWSER-1", user="carol")
            assert still.returncode == 3, still.stdout + still.stderr
    done = workspace.rg("change", "run", "CR-BROWSER-1", user="carol")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (workspace.root / "changes" / "done.flag").read_text().strip() == "web"


def test_csrf_and_roles_in_the_browser(browser: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, server, "olga")
    # The operator's rollback form, stripped of its CSRF token, is refused.
    browser.execute_script(
        "var f = document.querySelector('#stack-web-prod form.rollback');"
        "f.querySelector('input[name=csrf]').remove();"
        "f.querySelector('input[name=reason]').value = 'csrf test';"
        "f.submit();"
    )
    wait_for(lambda: browser.find_elements(By.ID, "message"))
    assert "CSRF" in browser.find_element(By.ID, "message").text
    # A viewer sees no rollback form, and a forged POST with a valid token is refused.
    sign_in(browser, server, "vic")
    assert not browser.find_elements(By.CSS_SELECTOR, "form.rollback")
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', browser.page_source)
    assert token
    status = browser.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "fetch('/stacks/web-prod/rollback', {method: 'POST', headers:"
        " {'Content-Type': 'application/x-www-form-urlencoded'},"
        " body: 'reason=viewer&csrf=' + arguments[0]}).then(r => done(r.status));",
        token[1],
    )
    assert status == 403


def test_an_operator_flips_a_flag_in_the_browser(
    browser: Any, server: Server, workspace: Workspace
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server, "olga")
    browser.find_element(By.ID, "flags-web-staging").click()
    card = browser.find_element(By.ID, f"flag-{FLAG}")
    assert card.find_element(By.CSS_SELECTOR, ".value").text.startswith("(unset")
    form = card.find_element(By.CSS_SELECTOR, "form.flag-set")
    Select(form.find_element(By.NAME, "value")).select_by_visible_text("true")
    form.find_element(By.NAME, "reason").send_keys("browser test")
    form.find_element(By.TAG_NAME, "button").click()
    wait_for(lambda: browser.find_elements(By.ID, "outcome"), 60, "the flag change's outcome")
    assert browser.find_element(By.ID, "outcome").text == f"flag web-staging {FLAG}: success"
    assert features(workspace) == 200
    shoot(browser, "flag-set", DESKTOP)
    browser.find_element(By.ID, "back").click()
    card = browser.find_element(By.ID, f"flag-{FLAG}")
    assert card.find_element(By.CSS_SELECTOR, ".value").text == "true"
    assert "olga" in browser.find_element(By.ID, "flag-history").text
    shoot(browser, "flags", DESKTOP)
    shoot(browser, "flags", PHONE)
