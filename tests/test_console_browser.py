"""The console in a real browser: Playwright (PyPI) driving Debian's Chromium.

Playwright's own browser download cannot work here, so the tests launch the system's
Chromium (``apt-get install chromium``; ``.ci/run`` does). Without it they skip with the
reason, and under ``CI=true`` they fail. With ``THUMBS_SCREENSHOTS=docs`` the execution
page's screenshot is written to ``docs/console-execution.png``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.images import encode, photo
from thumbs.local.lambda_runtime import FaultSwitch
from thumbs.local.session import Session
from thumbs.local.state import StateFolder

ROOT = Path(__file__).resolve().parent.parent
HOSTILE_NAME = "<img src=x onerror=alert(1)> & co.jpg"  # no slash: it is a file name too
# As the workplace's probe starts it: no sandbox as root, and nothing that reaches the network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the browser tests, but Debian's chromium is not installed")
        pytest.skip("no Chromium on this machine (apt-get install chromium): the browser tests need it")
    return found


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency: make install")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """A stack whose first Validate fails past its retries: one FAILED run to redrive from the page."""
    state = StateFolder(tmp_path_factory.mktemp("state"))
    with Session(state, faults=FaultSwitch.parse(["validate=transient:5"])) as session:
        session.upload("first.jpg", encode(photo(400, 300), "JPEG"))
        assert session.wait(1, "the run that fails")
        yield session, f"{session.stack.endpoint}/_console/"


def outcome(node) -> str:
    """A graph node's outcome, from its class (``node succeeded``, ``node not entered``)."""
    return " ".join(node.get_attribute("class").split()[1:])


def reload_until(page, condition, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the page never showed it"
        time.sleep(0.5)
        page.reload()


def test_upload_open_the_run_read_its_graph_and_states_and_keys_stay_text(browser, console, tmp_path):
    _, base = console
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(base)
    upload = tmp_path / HOSTILE_NAME
    upload.write_bytes(encode(photo(480, 320), "JPEG"))
    page.set_input_files("#upload input[type=file]", str(upload))
    page.click("#upload button[type=submit]")
    assert "Uploaded 1" in page.locator(".done").inner_text()

    row = page.locator("tr", has_text=HOSTILE_NAME)
    reload_until(page, lambda: row.count() == 1 and "SUCCEEDED" in row.inner_text())
    assert page.locator("td img").count() == 0  # the key's markup is text, not an element
    row.locator("a").click()

    page.wait_for_selector("#graph svg")
    outcomes = {node.get_attribute("data-state"): outcome(node) for node in page.locator("#graph a.node").all()}
    assert outcomes["Validate"] == outcomes["Record"] == outcomes["Thumbnails"] == "succeeded"
    assert outcomes["RecordRejected"] == outcomes["Rejected"] == "not entered"
    iterations = page.locator("#graph a.node[data-state=Thumbnails]").text_content()
    assert all(f"{size} px: succeeded" in iterations for size in (128, 256, 1024))  # each size, its outcome
    assert iterations.index("128 px") < iterations.index("256 px") < iterations.index("1024 px")  # item order
    text_width, box_width = page.evaluate(
        """() => { const node = document.querySelector('#graph a.node[data-state=Thumbnails]');
                   return [node.querySelector('text.iterations').getComputedTextLength(),
                           node.querySelector('rect').getBBox().width]; }"""
    )
    assert 0 < text_width < box_width  # the line fits its box
    assert page.locator("h2").inner_text().endswith("SUCCEEDED")
    assert page.locator("figure img").count() == 4  # the original and three thumbnails

    if os.environ.get("THUMBS_SCREENSHOTS") == "docs":
        page.screenshot(path=str(ROOT / "docs" / "console-execution.png"))
    page.locator("#graph a.node[data-state=Validate]").focus()  # reachable with the keyboard...
    page.keyboard.press("Enter")  # ...and opened with it: its input, output and attempts
    panel = page.locator("#state-Validate details")
    assert panel.get_attribute("open") is not None
    assert f'"key": "{HOSTILE_NAME}"' in panel.inner_text()
    assert "Output" in panel.inner_text() and "Attempt 1: succeeded" in panel.inner_text()

    assert dialogs == []  # no script from the key ever ran
    page.close()


def test_redrive_a_failed_run_from_its_page_and_see_it_succeed(browser, console):
    _, base = console
    page = browser.new_page()
    page.goto(f"{base}executions?status=FAILED")
    failed = page.locator("tr", has_text="first.jpg")
    assert "FAILED" in failed.inner_text()
    failed.locator("a").click()
    page.wait_for_selector("#graph svg")
    assert outcome(page.locator("#graph a.node[data-state=Validate]")) == "failed"
    page.click("text=Redrive")
    assert "redriven" in page.locator(".done").inner_text()
    reload_until(page, lambda: page.locator("h2").inner_text().endswith("SUCCEEDED"))
    assert "Redriven 1" in page.locator("main").inner_text()
    assert outcome(page.locator("#graph a.node[data-state=Validate]")) == "succeeded"  # in the run that resumed
    page.close()
