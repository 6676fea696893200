"""The status page in a real headless Chromium (Debian's, driven by Playwright): degraded -> fixed ->
Rebuild -> building -> running with the log streaming, then the suggestion banner and Ignore.
Screenshots go to tests/artifacts/ (or $ARTIFACTS_DIR)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.compose_project import forget_projects, project_files
from support.images import BASE_IMAGE
from support.repos import Remote
from support.supervisor import Supervisor

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR") or Path(__file__).parent / "artifacts")
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: tests/env/provision.sh test installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page-{name}.png"), full_page=True)


def test_the_page_takes_a_degraded_workspace_to_running_and_shows_suggestions(
    remote: Remote, make_workspace, browser
) -> None:
    from playwright.sync_api import expect

    remote.commit({".devcontainer/devcontainer.json": '{"image": ', "README.md": "project\n"})
    ws = make_workspace(remote.url)
    assert ws.up().returncode == 0
    sup = Supervisor(ws)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(sup.url)
        badge = page.locator("#status")
        expect(badge).to_have_attribute("data-status", "degraded", timeout=WAIT_MS)
        expect(page.locator("#problem")).to_be_visible()
        expect(page.locator("#problem-step")).to_contain_text("config")
        expect(page.locator("#problem-message")).to_contain_text("not valid JSON")
        expect(page.locator("#error-log-head")).to_contain_text("FALLBACK image")
        shot(page, "1-degraded")

        # the user fixes the config inside the workspace and rebuilds - with the keyboard
        (ws.folder / ".devcontainer" / "devcontainer.json").write_text(
            json.dumps({"image": BASE_IMAGE, "postCreateCommand": "echo hello from the rebuild"})
        )
        page.focus("#rebuild")
        page.keyboard.press("Enter")
        expect(badge).to_have_attribute("data-status", "building", timeout=WAIT_MS)
        expect(page.locator("#rebuild")).to_be_disabled()
        expect(page.locator("#log")).to_contain_text("postCreateCommand", timeout=WAIT_MS)
        shot(page, "2-building")
        expect(badge).to_have_attribute("data-status", "running", timeout=WAIT_MS)
        expect(page.locator("#log")).to_contain_text("workspace running")
        expect(page.locator("#problem")).to_be_hidden()
        expect(page.locator("#rebuild")).to_be_enabled()
        assert "\x1b[" not in page.locator("#log").inner_text(), "no ANSI escapes on the page"
        shot(page, "3-running")

        # an edit of the config: the banner names the file; Ignore clears it
        with open(ws.folder / ".devcontainer" / "devcontainer.json", "a") as handle:
            handle.write("\n// a later edit\n")
        banner = page.locator("#suggestion")
        expect(banner).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#changed-files")).to_have_text(".devcontainer/devcontainer.json")
        shot(page, "4-suggestion")
        page.click("#suggestion-ignore")
        expect(banner).to_be_hidden(timeout=WAIT_MS)
        assert ws.state()["rebuild_suggested"] is False

        # readable on a phone: nothing wider than the screen
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(sup.url)
        expect(phone.locator("#status")).to_have_attribute("data-status", "running", timeout=WAIT_MS)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width} px wide on a 390 px phone"
        shot(phone, "5-phone")
    finally:
        sup.stop()


def test_the_page_says_a_rebuild_keeps_the_compose_projects_volumes(
    remote: Remote, make_workspace, browser, sandbox: Path
) -> None:
    from playwright.sync_api import expect

    remote.commit(project_files())
    ws = make_workspace(remote.url)
    assert ws.up().returncode == 0
    sup = Supervisor(ws)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(sup.url)
        expect(page.locator("#status")).to_have_attribute("data-status", "running", timeout=WAIT_MS)
        project = ws.state()["compose_project"]
        note = page.locator("#volumes-note")
        expect(note).to_be_visible()
        expect(note).to_contain_text(f"every service of the compose project {project}")
        expect(note).to_contain_text(f"keeps its named volumes ({project}_kvdata)")
        expect(page.locator("#details")).to_contain_text(project)
        shot(page, "6-compose")
    finally:
        sup.stop()
        forget_projects(sandbox)
