import { beforeEach, describe, expect, it } from "vitest";
import { cartTotals, useCart } from "../state/cart";
import type { Product } from "../api/types";

const mug: Product = { id: "m", sku: "MUG", name: "Mug", description: "", price: "12.50", currency: "EUR", category: "", stock: { available: 5 } };
const pot: Product = { ...mug, id: "p", sku: "POT", name: "Pot", price: "0.10" };

describe("the cart", () => {
  beforeEach(() => useCart.getState().clear());

  it("adds up lines per product and totals in cents", () => {
    useCart.getState().add(mug);
    useCart.getState().add(mug, 2);
    useCart.getState().add(pot, 3);
    const { lines } = useCart.getState();
    expect(lines.map((line) => [line.product.id, line.quantity])).toEqual([["m", 3], ["p", 3]]);
    expect(cartTotals(lines).get("EUR")).toBe(3750 + 30);
  });

  it("drops a line set to zero", () => {
    useCart.getState().add(mug);
    useCart.getState().setQuantity("m", 0);
    expect(useCart.getState().lines).toEqual([]);
  });
});
