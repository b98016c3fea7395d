import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { login, logout, restoreSession } from "../api/session";
import { useAuth } from "../state/auth";
import { useCart } from "../state/cart";
import type { Product } from "../api/types";

const mug: Product = { id: "m", sku: "MUG", name: "Mug", description: "", price: "12.50", currency: "EUR", category: "", stock: { available: 5 } };
const me = { id: "u", email: "ada@example.org", name: "Ada", role: "user", status: "active" };

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

describe("the session across reloads", () => {
  beforeEach(() => {
    localStorage.clear();
    useAuth.setState({ accessToken: null, user: null, restored: false });
  });
  afterEach(() => vi.unstubAllGlobals());

  it("asks nothing on a page load in a browser that never signed in", async () => {
    const fetch = vi.fn();
    vi.stubGlobal("fetch", fetch);
    await restoreSession();
    expect(fetch).not.toHaveBeenCalled();
    expect(useAuth.getState()).toMatchObject({ user: null, restored: true });
  });

  it("signs in again from the refresh cookie after a sign-in, keeping no refresh token", async () => {
    const fetch = vi
      .fn()
      .mockResolvedValueOnce(json({ access_token: "a1", refresh_token: "r1", token_type: "bearer", expires_in: 900 }))
      .mockResolvedValueOnce(json(me))
      .mockResolvedValueOnce(json({ access_token: "a2", refresh_token: "r2", token_type: "bearer", expires_in: 900 }))
      .mockResolvedValueOnce(json(me));
    vi.stubGlobal("fetch", fetch);
    await login("ada@example.org", "correct horse battery staple");
    expect(JSON.stringify(useAuth.getState())).not.toContain("r1");
    useAuth.setState({ accessToken: null, user: null, restored: false }); // a reload
    await restoreSession();
    expect(useAuth.getState()).toMatchObject({ accessToken: "a2", user: me, restored: true });
    expect(fetch.mock.calls[2][0]).toBe("/api/v1/auth/refresh");
  });

  it("starts signed out when the edge refuses the cookie, and asks no more after", async () => {
    localStorage.setItem("conveyor-signed-in", "1");
    const fetch = vi.fn().mockResolvedValue(json({ status: 401, detail: "no refresh token" }, 401));
    vi.stubGlobal("fetch", fetch);
    await restoreSession();
    expect(useAuth.getState()).toMatchObject({ user: null, restored: true });
    await restoreSession();
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it("keeps the cart in this browser until the shopper logs out", async () => {
    useCart.getState().add(mug, 2);
    expect(JSON.parse(localStorage.getItem("conveyor-cart") ?? "{}").state.lines).toEqual([{ product: mug, quantity: 2 }]);
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(new Response(null, { status: 204 })));
    await logout();
    expect(useCart.getState().lines).toEqual([]);
    expect(JSON.parse(localStorage.getItem("conveyor-cart") ?? "{}").state.lines).toEqual([]);
  });
});
