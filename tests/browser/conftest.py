"""Browser tests: Playwright (Python, sync API) driving Debian's Chromium against the real
ASGI server (`asgi_server`: uvicorn in a thread of this process, so `settings` overrides
apply to it).

- Chromium comes from the system (`/usr/bin/chromium`, see scripts/install_browser_deps.sh);
  `playwright install` is never used. Without it the tests skip with the reason, except in CI
  (`CI` set), where they fail: CI must run them.
- Every page is checked for console errors and uncaught exceptions, and screenshots of the
  main pages (light and dark) go to var/screenshots/<timestamp>/, printed at the end of the
  run. `Tab.capture()` also measures the colour contrast of every visible text (contrast.js).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
TIMEOUT_MS = 10_000
HERE = Path(__file__).parent
CONTRAST_JS = (HERE / "contrast.js").read_text()
CLIPPED_JS = (HERE / "clipped.js").read_text()
FOCUS_JS = (HERE / "focus.js").read_text()

_screenshots: dict[str, Path] = {}


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: run scripts/install_browser_deps.sh (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -r requirements.txt"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI, but {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running in this thread while it is started,
    # and Django refuses ORM calls from a thread with a running loop. The tests' own ORM
    # calls (seeding, checks, pytest-django's flush) are plain sync code, so allow them for
    # exactly as long as Playwright runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    folder = Path(settings.BASE_DIR) / "var" / "screenshots" / datetime.now().strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    latest = folder.parent / "latest"
    if latest.is_symlink() or not latest.exists():
        latest.unlink(missing_ok=True)
        latest.symlink_to(folder.name)
    _screenshots["dir"] = folder
    return folder


def pytest_terminal_summary(terminalreporter):
    if "dir" in _screenshots:
        count = len(list(_screenshots["dir"].glob("*.png")))
        terminalreporter.write_line(f"browser screenshots ({count}): {_screenshots['dir']}")


@pytest.fixture(autouse=True)
def _own_demo_throttle(monkeypatch):
    from tenants import demo

    monkeypatch.setattr(demo, "THROTTLE_KEY", f"dac:test:{uuid.uuid4().hex}:demo")


@pytest.fixture
def base_url(asgi_server) -> str:
    return asgi_server.url


class Tab:
    """One browser context and page, with the checks every test wants."""

    def __init__(self, browser, base_url: str, shots: Path, *, phone: bool = False):
        options = {"viewport": PHONE, "is_mobile": True, "has_touch": True} if phone else {"viewport": DESKTOP}
        self.context = browser.new_context(base_url=base_url, color_scheme="light", locale="en-GB", timezone_id="Europe/Berlin", **options)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
        self.page = self.context.new_page()
        self.shots = shots
        self.suffix = "-phone" if phone else ""
        self.errors: list[str] = []
        self.allowed: list[re.Pattern] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message) -> None:
        if message.type == "error" and not any(p.search(message.text) for p in self.allowed):
            self.errors.append(f"console.error: {message.text} ({message.location.get('url', '')})")

    def allow_console_error(self, pattern: str) -> None:
        """An error the test provokes on purpose (e.g. a 429 the page must explain)."""
        self.allowed.append(re.compile(pattern))

    def goto(self, path: str):
        response = self.page.goto(path)
        assert response is not None and response.ok, f"{path}: {response.status if response else 'no response'}"
        return response

    def log_in(self, email: str, password: str) -> None:
        """Through the login form, as a person does; lands on the threads."""
        self.goto("/login/")
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url("**/threads/")

    def set_scheme(self, scheme: str) -> None:
        """Follow the system's colour scheme (what a visitor without a stored choice gets)."""
        self.page.emulate_media(color_scheme=scheme)
        self.page.wait_for_function("dark => document.documentElement.classList.contains('dark') === dark", arg=scheme == "dark")

    def contrast_failures(self) -> list[dict]:
        return self.page.evaluate(CONTRAST_JS)

    def capture(self, name: str, *, full_page: bool = True) -> None:
        """Screenshot in light and dark; both must pass the contrast check."""
        if full_page:
            self.page.evaluate("window.scrollTo(0, 0)")  # else the sticky header lands mid-page
        for scheme in ("light", "dark"):
            self.set_scheme(scheme)
            self.page.wait_for_timeout(50)  # let transitions settle
            failures = self.contrast_failures()
            assert failures == [], f"{name} ({scheme}): text below WCAG AA contrast: {failures[:8]}"
            self.page.screenshot(path=str(self.shots / f"{name}{self.suffix}-{scheme}.png"), full_page=full_page)
        self.set_scheme("light")

    def tab_through(self, limit: int = 80) -> list[str]:
        """Press Tab from the top of the page until focus wraps or leaves it. Every stop must
        be on screen and show a focus indicator; returns the stops, in order."""
        self.page.evaluate(
            """() => { window.scrollTo(0, 0); const start = document.createElement("span"); start.id = "tab-start";
            start.tabIndex = -1; document.body.prepend(start); start.focus(); }"""
        )
        stops, problems = [], []
        for _ in range(limit):
            self.page.keyboard.press("Tab")
            self.page.evaluate("document.getElementById('tab-start')?.remove()")
            focus = self.page.evaluate(FOCUS_JS)
            if focus is None or focus["order"] != str(len(stops) + 1):
                break
            stops.append(focus["what"])
            if not (focus["ring"] and focus["shown"]):
                problems.append(focus)
        assert problems == [], f"{self.page.url}: focus not visible on {problems}"
        return stops

    def no_horizontal_scroll(self) -> None:
        """Nothing is wider than the screen: no sideways scrolling, and nothing cut off at the
        right edge by an overflow-hidden box (content in horizontal scrollers is fine)."""
        overflow = self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{self.page.url}: the page is {overflow}px wider than the screen"
        clipped = self.page.evaluate(CLIPPED_JS)
        assert clipped == [], f"{self.page.url}: cut off at the right edge: {clipped[:5]}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_tab(browser, base_url, screenshot_dir) -> Iterator[Callable[..., Tab]]:
    tabs: list[Tab] = []

    def factory(**kwargs) -> Tab:
        tab = Tab(browser, base_url, screenshot_dir, **kwargs)
        tabs.append(tab)
        return tab

    yield factory
    errors = [error for tab in tabs for error in tab.errors]
    for tab in tabs:
        tab.close()
    assert errors == [], "errors in the browser:\n" + "\n".join(errors)
