import { useState, type FormEvent } from "react";
import { Link } from "react-router-dom";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { call, query } from "../api/client";
import type { Page, Product } from "../api/types";
import { ErrorMessage, Loading } from "../components/Status";
import { Pager, useCursors } from "../components/Pager";
import { formatMoney, useCart } from "../state/cart";

interface Filters {
  q: string;
  category: string;
  min_price: string;
  max_price: string;
}
const NO_FILTERS: Filters = { q: "", category: "", min_price: "", max_price: "" };
const PAGE_SIZE = 12;

export function CatalogPage() {
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const paging = useCursors(JSON.stringify(filters));
  const products = useQuery({
    queryKey: ["products", filters, paging.cursor],
    queryFn: ({ signal }) =>
      call<Page<Product>>(`/products${query({ ...filters, limit: PAGE_SIZE, cursor: paging.cursor })}`, { signal }),
    placeholderData: keepPreviousData,
  });
  const add = useCart((state) => state.add);

  const apply = (event: FormEvent) => {
    event.preventDefault();
    setFilters(draft);
  };
  const edit = (name: keyof Filters) => (event: { target: { value: string } }) =>
    setDraft({ ...draft, [name]: event.target.value });

  return (
    <section aria-labelledby="catalog-title">
      <h1 id="catalog-title" className="mb-4 text-2xl font-bold">
        Catalog
      </h1>
      <form role="search" onSubmit={apply} className="card mb-6 grid gap-3 sm:grid-cols-2 lg:grid-cols-5">
        <div className="lg:col-span-2">
          <label htmlFor="search" className="label">
            Search
          </label>
          <input id="search" type="search" className="field" value={draft.q} onChange={edit("q")} />
        </div>
        <div>
          <label htmlFor="category" className="label">
            Category
          </label>
          <input id="category" className="field" value={draft.category} onChange={edit("category")} />
        </div>
        {(
          [
            ["min_price", "Min price"],
            ["max_price", "Max price"],
          ] as const
        ).map(([name, label]) => (
          <div key={name}>
            <label htmlFor={name} className="label">
              {label}
            </label>
            <input id={name} inputMode="decimal" pattern="[0-9]+(\.[0-9]{1,2})?" className="field" value={draft[name]} onChange={edit(name)} />
          </div>
        ))}
        <div className="flex gap-2 sm:col-span-2 lg:col-span-5">
          <button type="submit" className="btn">
            Search
          </button>
          <button
            type="button"
            className="btn-secondary"
            onClick={() => {
              setDraft(NO_FILTERS);
              setFilters(NO_FILTERS);
            }}
          >
            Clear
          </button>
        </div>
      </form>
      {products.isPending && <Loading what="Loading the catalog" />}
      <ErrorMessage error={products.error} title="The catalog could not be loaded" />
      {products.data && products.data.items.length === 0 && <p>No products match.</p>}
      {products.data && (
        <>
          <ul className="grid gap-4 sm:grid-cols-2 lg:grid-cols-3" aria-label="Products">
            {products.data.items.map((product) => (
              <li key={product.id} className="card flex flex-col gap-2">
                <h2 className="text-lg font-semibold">
                  <Link to={`/products/${product.id}`} className="link">
                    {product.name}
                  </Link>
                </h2>
                <p className="text-sm text-slate-700">{product.category || "uncategorised"}</p>
                <p className="font-medium">{formatMoney(product.price, product.currency)}</p>
                <p className="text-sm text-slate-700">{product.stock.available} in stock</p>
                <button
                  type="button"
                  className="btn mt-auto"
                  disabled={product.stock.available === 0}
                  onClick={() => add(product)}
                >
                  Add to cart<span className="sr-only"> {product.name}</span>
                </button>
              </li>
            ))}
          </ul>
          <Pager page={paging.page} nextCursor={products.data.next_cursor} onNext={paging.next} onPrevious={paging.previous} />
        </>
      )}
    </section>
  );
}
