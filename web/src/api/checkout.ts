import { useRef, useState } from "react";
import { call } from "./client";
import type { Order } from "./types";

export interface CheckoutRequest {
  items: { product_id: string; quantity: number }[];
  currency: string;
  payment_token: string;
}

/**
 * One checkout attempt: its Idempotency-Key is made when the attempt starts and kept for
 * every retry of the same request, so a double click or a retry after a lost answer is one
 * order. A different request (another cart, another card) is a new attempt with a new key.
 */
export function useCheckout() {
  const attempt = useRef<{ key: string; request: string } | null>(null);
  const inFlight = useRef<Promise<Order> | null>(null);
  const [submitting, setSubmitting] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const submit = async (request: CheckoutRequest): Promise<Order | null> => {
    if (inFlight.current) return inFlight.current; // a second click while the first is sent
    const body = JSON.stringify(request);
    if (attempt.current?.request !== body) attempt.current = { key: crypto.randomUUID(), request: body };
    const key = attempt.current.key;
    setSubmitting(true);
    setError(null);
    inFlight.current = call<Order>("/orders", { method: "POST", body: request, headers: { "Idempotency-Key": key } });
    try {
      const order = await inFlight.current;
      attempt.current = null; // placed: the next checkout is a new attempt
      return order;
    } catch (failure) {
      setError(failure);
      return null;
    } finally {
      inFlight.current = null;
      setSubmitting(false);
    }
  };
  return { submit, submitting, error };
}
