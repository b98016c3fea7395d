import { useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router-dom";
import { useCheckout } from "../api/checkout";
import { ErrorMessage } from "../components/Status";
import { TableHead } from "../components/TableHead";
import { useAuth } from "../state/auth";
import { cartTotals, formatMoney, useCart } from "../state/cart";

export function CartPage() {
  const { lines, setQuantity, remove, clear } = useCart();
  const user = useAuth((state) => state.user);
  const [paymentToken, setPaymentToken] = useState("tok_visa");
  const { submit, submitting, error } = useCheckout();
  const navigate = useNavigate();
  const totals = cartTotals(lines);
  const currencies = [...totals.keys()];

  const checkout = async (event: FormEvent) => {
    event.preventDefault();
    const order = await submit({
      items: lines.map((line) => ({ product_id: line.product.id, quantity: line.quantity })),
      currency: currencies[0],
      payment_token: paymentToken,
    });
    if (order) {
      clear();
      navigate(`/orders/${order.id}`);
    }
  };

  if (lines.length === 0) {
    return (
      <section>
        <h1 className="mb-4 text-2xl font-bold">Your cart</h1>
        <p>
          Your cart is empty. <Link to="/" className="link">Browse the catalog</Link>.
        </p>
      </section>
    );
  }
  return (
    <section className="grid gap-6 lg:grid-cols-3">
      <div className="lg:col-span-2">
        <h1 className="mb-4 text-2xl font-bold">Your cart</h1>
        <table className="w-full border-collapse bg-white text-left">
          <caption className="sr-only">Products in your cart</caption>
          <TableHead columns={["Product", "Quantity", "Subtotal", <span className="sr-only">Remove</span>]} />
          <tbody>
            {lines.map(({ product, quantity }) => (
              <tr key={product.id} className="border-b">
                <td className="p-2">
                  <Link to={`/products/${product.id}`} className="link">{product.name}</Link>
                </td>
                <td className="p-2">
                  <label htmlFor={`qty-${product.id}`} className="sr-only">Quantity of {product.name}</label>
                  <input
                    id={`qty-${product.id}`}
                    type="number"
                    min={0}
                    className="field w-24"
                    value={quantity}
                    onChange={(event) => setQuantity(product.id, Number(event.target.value))}
                  />
                </td>
                <td className="p-2">{formatMoney(Number(product.price) * quantity, product.currency)}</td>
                <td className="p-2">
                  <button type="button" className="btn-secondary" onClick={() => remove(product.id)} aria-label={`Remove ${product.name}`}>
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <form onSubmit={checkout} className="card flex flex-col gap-3" aria-labelledby="checkout-title">
        <h2 id="checkout-title" className="text-xl font-semibold">Checkout</h2>
        {currencies.map((currency) => (
          <p key={currency} className="text-lg">
            Total: <strong>{formatMoney(totals.get(currency)! / 100, currency)}</strong>
          </p>
        ))}
        {currencies.length > 1 && (
          <p role="alert" className="text-red-900">An order is in one currency: remove the products priced in another.</p>
        )}
        <div>
          <label htmlFor="payment-token" className="label">Payment token</label>
          <input
            id="payment-token"
            className="field"
            value={paymentToken}
            onChange={(event) => setPaymentToken(event.target.value)}
            aria-describedby="payment-token-help"
            required
          />
          <p id="payment-token-help" className="mt-1 text-sm text-slate-700">
            The sandbox's card: tok_visa is accepted, tok_chargeDeclined is declined.
          </p>
        </div>
        <ErrorMessage error={error} title="Your order was not placed" />
        {user ? (
          <button type="submit" className="btn" disabled={submitting || currencies.length !== 1}>
            {submitting ? "Placing your order…" : "Place order"}
          </button>
        ) : (
          <p>
            <Link to="/login?next=/cart" className="link">Log in</Link> or <Link to="/register" className="link">register</Link> to check out.
          </p>
        )}
      </form>
    </section>
  );
}
