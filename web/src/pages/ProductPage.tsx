import { useState } from "react";
import { Link, useParams } from "react-router-dom";
import { useQuery } from "@tanstack/react-query";
import { call, query } from "../api/client";
import type { Product, Recommendation } from "../api/types";
import { ErrorMessage, Loading } from "../components/Status";
import { formatMoney, useCart } from "../state/cart";

// Stock changes as others order: the page asks again this often while it is open.
const STOCK_REFRESH_MS = 3000;

export function ProductPage() {
  const { productId = "" } = useParams();
  const product = useQuery({
    queryKey: ["product", productId],
    queryFn: ({ signal }) => call<Product>(`/products/${productId}`, { signal }),
    refetchInterval: STOCK_REFRESH_MS,
  });
  const add = useCart((state) => state.add);
  const [quantity, setQuantity] = useState(1);
  const [added, setAdded] = useState(false);

  if (product.isPending) return <Loading what="Loading the product" />;
  if (product.error) return <ErrorMessage error={product.error} title="The product could not be loaded" />;
  const item = product.data;
  return (
    <article className="grid gap-6 lg:grid-cols-3">
      <div className="card lg:col-span-2">
        <h1 className="text-2xl font-bold">{item.name}</h1>
        <p className="text-sm text-slate-700">
          SKU {item.sku} · {item.category || "uncategorised"}
        </p>
        <p className="mt-4 whitespace-pre-line">{item.description}</p>
      </div>
      <div className="card flex flex-col gap-3">
        <p className="text-2xl font-semibold">{formatMoney(item.price, item.currency)}</p>
        <p aria-live="polite" data-testid="stock">
          {item.stock.available > 0 ? `${item.stock.available} in stock` : "Out of stock"}
        </p>
        <label htmlFor="quantity" className="label">
          Quantity
        </label>
        <input
          id="quantity"
          type="number"
          min={1}
          max={Math.max(1, item.stock.available)}
          value={quantity}
          onChange={(event) => setQuantity(Math.max(1, Number(event.target.value) || 1))}
          className="field"
        />
        <button
          type="button"
          className="btn"
          disabled={item.stock.available === 0}
          onClick={() => {
            add(item, quantity);
            setAdded(true);
          }}
        >
          Add to cart
        </button>
        <p role="status">{added ? "Added to your cart." : ""}</p>
      </div>
      <Recommendations productId={productId} />
    </article>
  );
}

/** "Customers also bought": hidden when there is nothing to show, or it failed. */
function Recommendations({ productId }: { productId: string }) {
  const recommended = useQuery({
    queryKey: ["recommendations", productId],
    queryFn: ({ signal }) =>
      call<{ items: Recommendation[] }>(`/products/${productId}/recommendations${query({ limit: 4 })}`, { signal }),
    retry: false,
  });
  const items = recommended.data?.items ?? [];
  if (recommended.error || items.length === 0) return null;
  return (
    <section aria-labelledby="also-bought" className="lg:col-span-3">
      <h2 id="also-bought" className="mb-3 text-xl font-semibold">
        Customers also bought
      </h2>
      <ul className="grid gap-4 sm:grid-cols-2 lg:grid-cols-4">
        {items.map(({ product }) => (
          <li key={product.id} className="card">
            <Link to={`/products/${product.id}`} className="link">
              {product.name}
            </Link>
            <p>{formatMoney(product.price, product.currency)}</p>
          </li>
        ))}
      </ul>
    </section>
  );
}
