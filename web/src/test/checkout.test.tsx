import { afterEach, describe, expect, it, vi } from "vitest";
import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useCheckout, type CheckoutRequest } from "../api/checkout";
import { useAuth } from "../state/auth";

const REQUEST: CheckoutRequest = { items: [{ product_id: "p", quantity: 1 }], currency: "EUR", payment_token: "tok_visa" };

function Checkout({ request = REQUEST }: { request?: CheckoutRequest }) {
  const { submit, submitting, error } = useCheckout();
  return (
    <>
      <button type="button" onClick={() => void submit(request)}>
        Place order
      </button>
      <p>{submitting ? "submitting" : "idle"}</p>
      <p>{error ? "failed" : "no error"}</p>
    </>
  );
}

function orderAnswer(): Response {
  return new Response(JSON.stringify({ id: "o", status: "pending" }), { status: 202, headers: { "Content-Type": "application/json" } });
}

describe("checkout", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("sends one order with one key however often it is clicked", async () => {
    useAuth.setState({ accessToken: "token" });
    let answer: (response: Response) => void = () => {};
    const fetch = vi.fn(() => new Promise<Response>((resolve) => (answer = resolve)));
    vi.stubGlobal("fetch", fetch);
    render(<Checkout />);
    const button = screen.getByRole("button", { name: "Place order" });
    await userEvent.click(button);
    await userEvent.click(button);
    answer(orderAnswer());
    await waitFor(() => expect(screen.getByText("idle")).toBeInTheDocument());
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it("retries a failed attempt with the same Idempotency-Key", async () => {
    useAuth.setState({ accessToken: "token" });
    const fetch = vi
      .fn()
      .mockResolvedValueOnce(new Response(JSON.stringify({ status: 503, detail: "Kafka is unavailable" }), { status: 503, headers: { "Retry-After": "5" } }))
      .mockResolvedValueOnce(orderAnswer());
    vi.stubGlobal("fetch", fetch);
    render(<Checkout />);
    await userEvent.click(screen.getByRole("button", { name: "Place order" }));
    await waitFor(() => expect(screen.getByText("failed")).toBeInTheDocument());
    await userEvent.click(screen.getByRole("button", { name: "Place order" }));
    await waitFor(() => expect(screen.getByText("no error")).toBeInTheDocument());
    const keys = fetch.mock.calls.map(([, init]) => (init as RequestInit & { headers: Record<string, string> }).headers["Idempotency-Key"]);
    expect(keys).toHaveLength(2);
    expect(keys[0]).toBeTruthy();
    expect(keys[1]).toBe(keys[0]);
  });

  it("refreshes an expired access token once and retries", async () => {
    useAuth.setState({ accessToken: "expired" });
    const fetch = vi
      .fn()
      .mockResolvedValueOnce(new Response(JSON.stringify({ status: 401, detail: "the access token expired" }), { status: 401 }))
      .mockResolvedValueOnce(new Response(JSON.stringify({ access_token: "fresh", refresh_token: "refresh2", token_type: "bearer", expires_in: 900 }), { status: 200 }))
      .mockResolvedValueOnce(orderAnswer());
    vi.stubGlobal("fetch", fetch);
    render(<Checkout />);
    await userEvent.click(screen.getByRole("button", { name: "Place order" }));
    await waitFor(() => expect(fetch).toHaveBeenCalledTimes(3));
    const [, refresh, retried] = fetch.mock.calls;
    expect(refresh[0]).toBe("/api/v1/auth/refresh");
    expect((refresh[1] as RequestInit).body).toBeUndefined(); // the cookie carries the token
    expect((retried[1] as { headers: Record<string, string> }).headers.Authorization).toBe("Bearer fresh");
    expect(useAuth.getState().accessToken).toBe("fresh");
    await waitFor(() => expect(screen.getByText("no error")).toBeInTheDocument());
  });
});
