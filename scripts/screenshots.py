"""Screenshots of the storefront and the admin console for README (docs/images/).

Run by `make screenshots` against the stack `make run` started: it adds a few demo products
when the catalog has fewer, places an order as a demo shopper, and photographs the pages in
Debian's Chromium (the same browser and flags as the browser tests).
"""

from __future__ import annotations

import secrets
import sys
import uuid
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

from conveyor.devstack.browser import CHROMIUM, CHROMIUM_FLAGS
from conveyor.devstack.components import DEV_ADMIN_EMAIL
from conveyor.devstack.settings import DevStackSettings

REPOSITORY = Path(__file__).resolve().parents[1]
IMAGES = REPOSITORY / "docs" / "images"
DEMO_PRODUCTS = [
    ("Enamel mug", "kitchen", "12.50", "A sturdy mug for the campfire."),
    ("Storm lantern", "outdoor", "34.90", "Burns eight hours on one filling."),
    ("Copper kettle", "kitchen", "58.00", "Boils a litre on any stove."),
    ("Wool blanket", "home", "79.00", "Warm, heavy and moth-proof."),
    ("Folding stool", "outdoor", "24.50", "Packs flat, holds 120 kg."),
    ("Cast-iron pan", "kitchen", "45.00", "Seasoned and ready for the fire."),
]


def sign_in(page: Page, email: str, password: str, then: str) -> None:
    """Log in through the form, landing on ``then``."""
    page.goto(f"/login?next={then}")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def main() -> None:
    settings = DevStackSettings()
    base = f"http://{settings.host}:{settings.api_port}"
    admin_password = (settings.root / "admin-password").read_text().strip()
    api = httpx.Client(base_url=f"{base}/api/v1", timeout=30)
    tokens = api.post(
        "/auth/login", json={"email": DEV_ADMIN_EMAIL, "password": admin_password}
    ).raise_for_status()
    admin = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    if len(api.get("/products").json()["items"]) < len(DEMO_PRODUCTS):
        for name, category, price, description in DEMO_PRODUCTS:
            api.post(
                "/products",
                headers=admin,
                json={
                    "sku": f"DEMO-{uuid.uuid4().hex[:8]}",
                    "name": name,
                    "description": description,
                    "price": price,
                    "currency": "EUR",
                    "category": category,
                    "initial_stock": 40,
                },
            ).raise_for_status()
    shopper_email = f"shopper-{uuid.uuid4().hex[:8]}@example.org"
    shopper_password = f"pass-{secrets.token_urlsafe(12)}"
    api.post(
        "/auth/register",
        json={"email": shopper_email, "name": "Demo Shopper", "password": shopper_password},
    ).raise_for_status()

    # A declined card, so the operations panel has a rejection reason to show.
    shopper = api.post(
        "/auth/login", json={"email": shopper_email, "password": shopper_password}
    ).raise_for_status()
    first = api.get("/products").json()["items"][0]
    api.post(
        "/orders",
        headers={
            "Authorization": f"Bearer {shopper.json()['access_token']}",
            "Idempotency-Key": uuid.uuid4().hex,
        },
        json={
            "items": [{"product_id": first["id"], "quantity": 1}],
            "currency": first["currency"],
            "payment_token": "tok_chargeDeclined",
        },
    ).raise_for_status()

    IMAGES.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_FLAGS)
        )
        page = browser.new_context(
            base_url=base, viewport={"width": 1280, "height": 860}
        ).new_page()
        sign_in(page, shopper_email, shopper_password, "/")
        expect(
            page.get_by_role("list", name="Products").get_by_role("listitem").first
        ).to_be_visible()
        page.screenshot(path=IMAGES / "storefront-catalog.png")
        page.get_by_role("list", name="Products").get_by_role("link").first.click()
        expect(page.get_by_test_id("stock")).to_be_visible()
        page.get_by_role("button", name="Add to cart").click()
        page.screenshot(path=IMAGES / "storefront-product.png")
        page.get_by_role("link", name="Cart").click()
        page.screenshot(path=IMAGES / "storefront-cart.png")
        page.get_by_role("button", name="Place order").click()
        expect(page.get_by_test_id("order-status")).to_have_attribute(
            "data-status", "confirmed", timeout=60_000
        )
        page.screenshot(path=IMAGES / "storefront-order.png")

        console = browser.new_context(
            base_url=base, viewport={"width": 1280, "height": 860}
        ).new_page()
        sign_in(console, DEV_ADMIN_EMAIL, admin_password, "/admin")
        expect(console.get_by_test_id("orders-placed")).to_be_visible()
        console.screenshot(path=IMAGES / "console-operations.png")
        console.get_by_role("link", name="Products").click()
        expect(console.get_by_role("list", name="Products to manage")).to_be_visible()
        console.screenshot(path=IMAGES / "console-products.png")
        browser.close()
    print(f"screenshots in {IMAGES.relative_to(REPOSITORY)}", file=sys.stderr)


if __name__ == "__main__":
    main()
