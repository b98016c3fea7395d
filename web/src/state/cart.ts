import { create } from "zustand";
import { createJSONStorage, persist } from "zustand/middleware";
import type { Product } from "../api/types";

export interface CartLine {
  product: Product;
  quantity: number;
}

export interface CartState {
  lines: CartLine[];
  add: (product: Product, quantity?: number) => void;
  setQuantity: (productId: string, quantity: number) => void;
  remove: (productId: string) => void;
  clear: () => void;
}

/**
 * The cart: one line per product; a quantity of 0 or less removes the line. It is kept in
 * this browser's localStorage, so a reload or a new tab finds it; the prices shown are those
 * of when a line was added, and the edge prices an order when it is placed.
 */
export const useCart = create<CartState>()(
  persist(
    (set) => ({
      lines: [],
      add: (product, quantity = 1) =>
        set((state) => {
          const existing = state.lines.find((line) => line.product.id === product.id);
          if (existing) {
            return {
              lines: state.lines.map((line) =>
                line.product.id === product.id ? { product, quantity: line.quantity + quantity } : line,
              ),
            };
          }
          return { lines: [...state.lines, { product, quantity }] };
        }),
      setQuantity: (productId, quantity) =>
        set((state) => ({
          lines:
            quantity <= 0
              ? state.lines.filter((line) => line.product.id !== productId)
              : state.lines.map((line) => (line.product.id === productId ? { ...line, quantity } : line)),
        })),
      remove: (productId) => set((state) => ({ lines: state.lines.filter((line) => line.product.id !== productId) })),
      clear: () => set({ lines: [] }),
    }),
    {
      name: "conveyor-cart",
      storage: createJSONStorage(() => localStorage),
      partialize: (state) => ({ lines: state.lines }),
    },
  ),
);

/** The cart's total in cents per currency (a cart may mix currencies; an order may not). */
export function cartTotals(lines: CartLine[]): Map<string, number> {
  const totals = new Map<string, number>();
  for (const line of lines) {
    const cents = Math.round(Number(line.product.price) * 100) * line.quantity;
    totals.set(line.product.currency, (totals.get(line.product.currency) ?? 0) + cents);
  }
  return totals;
}

export function formatMoney(amount: string | number, currency: string): string {
  return new Intl.NumberFormat("en", { style: "currency", currency }).format(Number(amount));
}
