"""Signing in to the portal in a real Chromium: OpenID Connect with PKCE at the demo broker, sessions, language."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from browser import Tab, check_page, keyboard_walk
from portal_support import PortalNode

pytestmark = pytest.mark.slow


def test_researcher_signs_in_at_the_broker_and_out_again(portal_node: PortalNode, tab: Callable[..., Tab]) -> None:
    browser_tab = tab()
    page = browser_tab.page
    page.goto(f"{portal_node.url}/")
    assert page.url == f"{portal_node.url}/portal/", "/ leads to the portal"
    check_page(browser_tab, "home")
    page.get_by_role("link", name="Sign in", exact=True).first.click()
    check_page(browser_tab, "signin")
    page.get_by_role("link", name="Sign in with your passport broker").click()
    # The broker's own (demo) login page: choose the researcher.
    page.get_by_role("button", name="Sign in as Dr Ada Researcher").click()
    page.wait_for_url(f"{portal_node.url}/portal/*")
    assert "code=" not in page.url and "state=" not in page.url, "the authorization code is left behind"
    assert page.get_by_text("You are signed in.").is_visible()
    assert page.get_by_text("Signed in as demo-researcher@").is_visible()
    cookies = {c["name"]: c for c in browser_tab.context.cookies()}
    session = cookies["genoshare_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    # Where a signed-in person sees whether they are signed in elsewhere too.
    page.get_by_role("link", name="My sessions").first.click()
    assert page.get_by_role("heading", name="My sessions").is_visible()
    assert page.get_by_text("You are signed in here only.").is_visible()
    check_page(browser_tab, "account")

    page.get_by_role("button", name="Sign out").click()
    assert page.get_by_text("You are signed out.").is_visible()
    assert page.get_by_role("link", name="Sign in", exact=True).first.is_visible()


def test_keyboard_only_and_phone_and_french(portal_node: PortalNode, tab: Callable[..., Tab]) -> None:
    phone = tab(phone=True, locale="fr-FR")
    phone.page.goto(f"{portal_node.url}/portal/")
    assert phone.page.locator("html").get_attribute("lang") == "fr", "Accept-Language chooses French"
    assert phone.page.get_by_role("link", name="Aller au contenu principal").count() == 1
    width = phone.page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone ({width}px wide)"
    check_page(phone, "home-phone-fr")
    stops = keyboard_walk(phone.page)
    assert any(stop["text"] == "Se connecter" for stop in stops), stops
    for path, name in (
        ("/portal/datasets", "catalogue-phone-fr"),
        ("/portal/discover?terms=HP:0001250", "discover-phone-fr"),
    ):
        phone.page.goto(f"{portal_node.url}{path}")
        wide = phone.page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= 375, f"{path} scrolls sideways on a phone ({wide}px wide)"
        check_page(phone, name)
    assert "Jeux de données" in phone.page.locator("nav").inner_text()
    # The language switch works without JavaScript: choose English, press its button.
    phone.page.select_option("#lang-select", "en")
    phone.page.get_by_role("button", name="Changer").click()
    assert phone.page.locator("html").get_attribute("lang") == "en"


def test_sign_in_with_the_keyboard_alone(portal_node: PortalNode, tab: Callable[..., Tab]) -> None:
    keyboard = tab()
    page = keyboard.page
    page.goto(f"{portal_node.url}/portal/signin")
    stops = keyboard_walk(page)
    link = next(i for i, stop in enumerate(stops) if stop["text"] == "Sign in with your passport broker")
    page.focus("body")
    for _ in range(link + 1):
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{portal_node.broker_url}/authorize*")
    page.keyboard.press("Tab")  # the broker's first account button
    page.keyboard.press("Enter")
    page.wait_for_url(f"{portal_node.url}/portal/*")
    assert page.get_by_text("Signed in as demo-researcher@").is_visible()
