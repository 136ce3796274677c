"""Driving Debian's chromium with Playwright for the portal tests, and what every page is checked for.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium``. Each check a page must
pass is one helper here, so every portal test holds every page to the same bar:

- ``check_page``: a screenshot kept as a test artefact, no serious or critical axe-core violation, and no
  Content-Security-Policy violation (an inline script or style the policy blocked is a broken page);
- ``keyboard_walk``: the page used with the Tab key alone: the skip link comes first, every focused
  element is visible and shows a focus indicator.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "portal"
#: A phone-sized screen (an iPhone SE's CSS pixels).
PHONE = {"width": 375, "height": 667}
DESKTOP = {"width": 1280, "height": 800}
SERIOUS = ("serious", "critical")
_AXE = Axe()


def launch() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            # Tests run as root in containers, where chromium's sandbox cannot start.
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """A browser context (its own cookies: one person) with one page, and what its console reported."""

    context: BrowserContext
    page: Page
    csp_violations: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.context.close()


def open_tab(browser: Browser, *, phone: bool = False, locale: str = "en-GB") -> Tab:
    context = browser.new_context(
        viewport=PHONE if phone else DESKTOP,
        locale=locale,
        is_mobile=phone,
        has_touch=phone,
        accept_downloads=True,
    )
    # Generous: Chromium shares two cores with the rest of the suite in CI.
    context.set_default_timeout(30_000)
    page = context.new_page()
    tab = Tab(context, page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            tab.csp_violations.append(message.text)

    page.on("console", on_console)
    return tab


def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG under ``tests/artifacts/portal/`` (git-ignored; CI keeps the folder as an artefact)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page: Page) -> list[str]:
    """Serious and critical axe-core violations of the page as it is now, one line each."""
    results = _AXE.run(page)
    found = []
    for violation in results.response.get("violations", []):
        if violation.get("impact") in SERIOUS:
            targets = [", ".join(node.get("target", [])) for node in violation.get("nodes", [])][:5]
            found.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return found


def check_page(tab: Tab, name: str) -> None:
    """Screenshot, then no serious/critical accessibility violation and no CSP violation on this page."""
    screenshot(tab.page, name)
    violations = axe_violations(tab.page)
    assert not violations, f"{name}: axe-core found\n" + "\n".join(violations)
    assert not tab.csp_violations, f"{name}: Content-Security-Policy blocked: {tab.csp_violations}"


_FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return {
    tag: el.tagName.toLowerCase(),
    text: (el.innerText || el.value || el.getAttribute('aria-label') || el.name || '').trim().slice(0, 60),
    href: el.getAttribute('href'),
    outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0,
    shadow: style.boxShadow !== 'none',
    visible: box.width > 0 && box.height > 0,
  };
}"""


def keyboard_walk(page: Page, steps: int = 40) -> list[dict[str, object]]:
    """Tab through the page from its top; each stop must be visible with a focus indicator.

    Returns the stops, so a test can assert that what it needs (a form's button, a link) is reachable.
    """
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    page.focus("body")
    stops: list[dict[str, object]] = []
    for _ in range(steps):
        page.keyboard.press("Tab")
        focused = page.evaluate(_FOCUSED)
        if focused is None:
            break
        assert focused["visible"], f"focus went to an element that cannot be seen: {focused}"
        assert focused["outline"] or focused["shadow"], f"no visible focus indicator on {focused}"
        if stops and focused == stops[0]:
            break  # wrapped around
        stops.append(focused)
    assert stops, "nothing on the page takes keyboard focus"
    assert stops[0]["href"] == "#main", f"the first Tab stop must be the skip link, not {stops[0]}"
    return stops
