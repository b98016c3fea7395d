"""The storefront and the console in a real Chromium, against the session's edge, workers
and stack: what a shopper and an admin see and do, end to end."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect
from pypdf import PdfReader

from conveyor.devstack.smtp_sink import read_mailbox
from tests.support.edge import PASSWORD_RESET_SUBJECT, Account, Api
from tests.support.waiting import eventually_async
from tests.support.workers import Workers
from tests.web.conftest import AXE

pytestmark = pytest.mark.e2e

# An order goes through the saga (stock, payment) before it shows confirmed.
SETTLED_MS = 60_000


def tag() -> str:
    """A word of the test's own, so its products are the only ones a search finds."""
    return f"t{uuid.uuid4().hex[:10]}"


async def sign_in(page: Page, account: Account, then: str = "/") -> None:
    """Log in through the form, landing on ``then``."""
    await page.goto(f"/login?next={then}")
    await page.get_by_label("E-mail").fill(account.email)
    await page.get_by_label("Password").fill(account.password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()


async def order_in_the_browser(page: Page, product: dict[str, Any], token: str) -> None:
    await page.get_by_role("button", name="Add to cart").click()
    await page.get_by_role("link", name=re.compile("^Cart")).click()
    await page.get_by_label("Payment token").fill(token)
    await page.get_by_role("button", name="Place order").click()
    await expect(page).to_have_url(re.compile(r"/orders/[0-9a-f-]{36}$"))


async def test_a_shopper_registers_searches_orders_two_products_and_sees_it_confirmed(
    page: Page, api: Api, admin: Account, workers: Workers
) -> None:
    word = tag()
    lantern = await api.new_product(admin, name=f"Lantern {word}", price="20.00")
    kettle = await api.new_product(admin, name=f"Kettle {word}", price="15.50")

    await page.goto("/register")
    await page.get_by_label("Name").fill("Grace Hopper")
    await page.get_by_label("E-mail").fill(f"grace-{word}@example.org")
    await page.get_by_label("Password").fill(f"pass-{secrets.token_urlsafe(12)}")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Verify your e-mail")).to_be_visible()

    await page.get_by_role("link", name="Catalog").click()
    await page.get_by_role("searchbox", name="Search").fill(word)
    await page.get_by_role("button", name="Search", exact=True).click()
    products = page.get_by_role("list", name="Products").get_by_role("listitem")
    await expect(products).to_have_count(2)
    for product in (lantern, kettle):
        await page.get_by_role("button", name=f"Add to cart {product['name']}").click()
    await page.get_by_role("link", name=re.compile("^Cart")).click()
    await expect(page.get_by_text("€35.50")).to_be_visible()
    await page.get_by_role("button", name="Place order").click()

    status = page.get_by_test_id("order-status")
    await expect(status).to_have_attribute("data-status", "confirmed", timeout=SETTLED_MS)
    await expect(status).to_contain_text("Confirmed")
    async with page.expect_download() as downloading:
        await page.get_by_role("button", name="Download invoice").click()
    download = await downloading.value
    assert re.fullmatch(r"invoice-\d{4}-\d{6}\.pdf", download.suggested_filename)
    invoice = "\n".join(sheet.extract_text() for sheet in PdfReader(await download.path()).pages)
    for product in (lantern, kettle):
        assert product["name"] in invoice
    assert "35.50" in invoice

    await page.get_by_role("link", name="Orders").click()
    await expect(page.get_by_role("cell", name="confirmed")).to_have_count(1)

    # The recommendations processor counts the two as bought together; the lantern's page
    # then offers the kettle.
    async def recommended() -> list[str]:
        answer = await api.http.get(f"/products/{lantern['id']}/recommendations")
        return [item["product"]["id"] for item in answer.json()["items"]]

    await eventually_async(
        recommended,
        "the kettle recommended with the lantern",
        until=lambda ids: kettle["id"] in ids,
        within=60,
    )
    await page.goto(f"/products/{lantern['id']}")
    also_bought = page.get_by_role("region", name="Customers also bought")
    await expect(also_bought.get_by_role("link", name=kettle["name"])).to_be_visible()


async def test_a_reload_or_a_new_tab_keeps_the_shopper_signed_in_and_the_cart(
    context: BrowserContext,
    page: Page,
    api: Api,
    admin: Account,
    account: Account,
    workers: Workers,
) -> None:
    product = await api.new_product(admin, name=f"Lamp {tag()}")
    await sign_in(page, account, then=f"/products/{product['id']}")
    await page.get_by_role("button", name="Add to cart").click()
    cart_link = page.get_by_role("link", name="Cart (1)")
    await expect(cart_link).to_be_visible()

    await page.reload()
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()
    await expect(cart_link).to_be_visible()
    # No script of the page can read the refresh token: it is an HttpOnly cookie.
    assert "conveyor_refresh" not in await page.evaluate("document.cookie")
    [cookie] = [c for c in await context.cookies() if c["name"] == "conveyor_refresh"]
    assert cookie["httpOnly"]
    assert cookie["secure"]
    assert cookie["sameSite"] == "Strict"

    tab = await context.new_page()
    await tab.goto("/orders")  # a page for signed-in shoppers only, loaded anew
    await expect(tab.get_by_role("heading", name="Your orders")).to_be_visible()
    await expect(tab.get_by_role("link", name="Cart (1)")).to_be_visible()

    await tab.get_by_role("button", name="Log out").click()
    await expect(tab.get_by_role("link", name="Log in")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("link", name="Log in")).to_be_visible()
    await expect(page.get_by_role("link", name="Cart (0)")).to_be_visible()
    await page.goto("/orders")
    await expect(page).to_have_url(re.compile(r"/login\?next=%2Forders$"))


async def test_a_shopper_who_forgot_the_password_follows_the_emailed_link_to_a_new_one(
    page: Page, api: Api
) -> None:
    account = await api.new_account()  # its own: the password changes
    await page.goto("/login")
    await page.get_by_role("link", name="Forgot your password?").click()
    await page.get_by_label("E-mail").fill(account.email)
    await page.get_by_role("button", name="Send me a link").click()
    await expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()

    [code] = await api.codes_mailed(account.email, PASSWORD_RESET_SUBJECT)
    assert api.maildir is not None
    [mail] = [
        mail
        for mail in read_mailbox(api.maildir, account.email)
        if mail.subject == PASSWORD_RESET_SUBJECT
    ]
    [link] = [line for line in mail.body.splitlines() if line.startswith("http")]
    await page.goto(link)
    await expect(page.get_by_label("Code from the e-mail")).to_have_value(code)
    new_password = f"pass-{secrets.token_urlsafe(12)}"
    await page.get_by_label("New password").fill(new_password)
    await page.get_by_role("button", name="Change password").click()
    done = page.get_by_role("status")
    await expect(done.get_by_role("heading", name="Password changed")).to_be_visible()

    await done.get_by_role("link", name="Log in").click()
    await page.get_by_label("E-mail").fill(account.email)
    await page.get_by_label("Password").fill(new_password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()


async def test_a_declined_card_shows_why_the_order_was_rejected(
    page: Page, api: Api, admin: Account, account: Account, workers: Workers
) -> None:
    product = await api.new_product(admin, name=f"Tent {tag()}")
    await sign_in(page, account, then=f"/products/{product['id']}")
    await order_in_the_browser(page, product, "tok_chargeDeclined")
    status = page.get_by_test_id("order-status")
    await expect(status).to_have_attribute("data-status", "rejected", timeout=SETTLED_MS)
    await expect(page.get_by_test_id("rejection-reason")).to_have_text(
        re.compile("card was declined")
    )


async def test_stock_the_admin_adds_in_the_console_shows_on_the_product_page(
    context: BrowserContext, page: Page, api: Api, admin: Account, workers: Workers
) -> None:
    product = await api.new_product(admin, name=f"Stove {tag()}", stock=10)
    storefront = await context.new_page()
    await storefront.goto(f"/products/{product['id']}")
    await expect(storefront.get_by_test_id("stock")).to_have_text("10 in stock")

    await sign_in(page, admin)
    await page.get_by_role("link", name="Console").click()
    await page.get_by_role("link", name="Products").click()
    await page.get_by_label(f"Stock change for {product['name']}").fill("5")
    row = page.get_by_role("listitem", name=product["name"])
    await row.get_by_role("button", name="Adjust stock").click()
    await expect(row.get_by_role("status")).to_contain_text("Stock adjusted by 5")

    # The product page polls its stock: the shopper sees it without reloading.
    await expect(storefront.get_by_test_id("stock")).to_have_text("15 in stock", timeout=SETTLED_MS)


async def tab_to(page: Page, name: str, role: str = "button") -> None:
    """Press Tab until the control ``name`` has the focus, and check the focus is visible."""
    target = page.get_by_role(role, name=name, exact=True)  # type: ignore[arg-type]
    for _ in range(60):
        await page.keyboard.press("Tab")
        if await target.evaluate("element => element === document.activeElement"):
            outline = await target.evaluate("element => getComputedStyle(element).outlineStyle")
            assert outline != "none", f"{name} has the focus but shows no outline"
            return
    raise AssertionError(f"Tab never reached the {role} {name!r}")


async def test_a_shopper_checks_out_with_the_keyboard_alone(
    page: Page, api: Api, admin: Account, account: Account, workers: Workers
) -> None:
    product = await api.new_product(admin, name=f"Lamp {tag()}")
    await page.goto(f"/login?next=/products/{product['id']}")
    await tab_to(page, "E-mail", "textbox")
    await page.keyboard.type(account.email)
    await page.keyboard.press("Tab")
    await page.keyboard.type(account.password)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()

    await tab_to(page, "Add to cart")
    await page.keyboard.press("Enter")
    await expect(page.get_by_text("Added to your cart.")).to_be_visible()
    await tab_to(page, "Cart (1)", "link")
    await page.keyboard.press("Enter")
    await tab_to(page, "Place order")
    await page.keyboard.press("Enter")
    status = page.get_by_test_id("order-status")
    await expect(status).to_have_attribute("data-status", "confirmed", timeout=SETTLED_MS)


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations of the page as it is now."""
    await page.add_script_tag(path=str(AXE))
    found = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


async def test_the_main_pages_have_no_serious_accessibility_violations(
    page: Page, api: Api, admin: Account, workers: Workers
) -> None:
    product = await api.new_product(admin, name=f"Mug {tag()}")
    found: dict[str, list[dict[str, Any]]] = {}

    async def check(name: str, heading: str) -> None:
        await expect(page.get_by_role("heading", name=heading).first).to_be_visible()
        found[name] = await serious_violations(page)

    await page.goto("/")
    await check("catalog", "Catalog")
    await page.goto(f"/products/{product['id']}")
    await check("product", product["name"])
    await page.goto("/register")
    await check("register", "Register")
    await sign_in(page, admin, then=f"/products/{product['id']}")
    await page.get_by_role("button", name="Add to cart").click()
    await page.get_by_role("link", name=re.compile("^Cart")).click()
    await check("cart", "Your cart")
    await page.get_by_role("button", name="Place order").click()
    await check("order", "Order")
    await page.get_by_role("link", name="Console").click()
    await expect(page.get_by_test_id("orders-placed")).to_be_visible()
    await check("console: operations", "Operations")
    await page.get_by_role("link", name="Products").click()
    await check("console: products", "Products")
    await page.get_by_role("link", name="Users").click()
    await expect(page.get_by_role("table")).to_be_visible()
    await check("console: users", "Users")
    assert {name: issues for name, issues in found.items() if issues} == {}, json.dumps(found)
