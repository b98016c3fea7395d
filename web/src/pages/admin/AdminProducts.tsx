import { useState, type FormEvent } from "react";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { call, query } from "../../api/client";
import type { Page, Product } from "../../api/types";
import { ErrorMessage, Loading } from "../../components/Status";
import { Pager, useCursors } from "../../components/Pager";
import { useAction } from "../../components/useAction";
import { formatMoney } from "../../state/cart";

const EMPTY = { sku: "", name: "", description: "", price: "", currency: "EUR", category: "", initial_stock: "0" };

export function AdminProducts() {
  const paging = useCursors("admin-products");
  const queries = useQueryClient();
  const products = useQuery({
    queryKey: ["products", "admin", paging.cursor],
    queryFn: ({ signal }) => call<Page<Product>>(`/products${query({ limit: 20, cursor: paging.cursor })}`, { signal }),
    placeholderData: keepPreviousData,
    refetchInterval: 5000,
  });
  const refresh = () => queries.invalidateQueries({ queryKey: ["products"] });
  return (
    <section aria-labelledby="products-title" className="flex flex-col gap-6">
      <h2 id="products-title" className="text-xl font-semibold">Products</h2>
      <NewProduct onCreated={refresh} />
      {products.isPending && <Loading what="Loading the products" />}
      <ErrorMessage error={products.error} title="The products could not be loaded" />
      {products.data && (
        <>
          <ul className="flex flex-col gap-3" aria-label="Products to manage">
            {products.data.items.map((product) => (
              <ProductRow key={product.id} product={product} onChanged={refresh} />
            ))}
          </ul>
          <Pager page={paging.page} nextCursor={products.data.next_cursor} onNext={paging.next} onPrevious={paging.previous} />
        </>
      )}
    </section>
  );
}

function NewProduct({ onCreated }: { onCreated: () => void }) {
  const [form, setForm] = useState(EMPTY);
  const { run, busy, error } = useAction();
  const create = (event: FormEvent) => {
    event.preventDefault();
    void run(async () => {
      await call<Product>("/products", { method: "POST", body: { ...form, initial_stock: Number(form.initial_stock) } });
      setForm(EMPTY);
      onCreated();
    });
  };
  const field = (name: keyof typeof EMPTY, label: string, extra: Record<string, unknown> = {}) => (
    <div>
      <label htmlFor={`new-${name}`} className="label">{label}</label>
      <input id={`new-${name}`} className="field" value={form[name]} onChange={(event) => setForm({ ...form, [name]: event.target.value })} {...extra} />
    </div>
  );
  return (
    <form onSubmit={create} className="card grid gap-3 sm:grid-cols-2 lg:grid-cols-4" aria-labelledby="new-product-title">
      <h3 id="new-product-title" className="font-semibold sm:col-span-2 lg:col-span-4">New product</h3>
      {field("sku", "SKU", { required: true })}
      {field("name", "Name", { required: true })}
      {field("price", "Price", { required: true, inputMode: "decimal", pattern: "[0-9]+(\\.[0-9]{1,2})?" })}
      {field("currency", "Currency", { required: true, pattern: "[A-Z]{3}" })}
      {field("category", "Category")}
      {field("initial_stock", "Initial stock", { type: "number", min: 0 })}
      <div className="sm:col-span-2">{field("description", "Description")}</div>
      <div className="sm:col-span-2 lg:col-span-4"><ErrorMessage error={error} title="The product was not created" /></div>
      <div><button type="submit" className="btn" disabled={busy}>Create product</button></div>
    </form>
  );
}

function ProductRow({ product, onChanged }: { product: Product; onChanged: () => void }) {
  const [editing, setEditing] = useState(false);
  const [edit, setEdit] = useState({ name: product.name, price: product.price, category: product.category, description: product.description });
  const [delta, setDelta] = useState("");
  const [note, setNote] = useState("");
  const [error, setError] = useState<unknown>(null);
  const act = async (action: () => Promise<unknown>, done: string) => {
    setError(null);
    setNote("");
    try {
      await action();
      setNote(done);
      onChanged();
    } catch (failure) {
      setError(failure);
    }
  };
  const save = (event: FormEvent) => {
    event.preventDefault();
    void act(async () => {
      await call<Product>(`/products/${product.id}`, { method: "PATCH", body: edit });
      setEditing(false);
    }, "Saved.");
  };
  const adjust = (event: FormEvent) => {
    event.preventDefault();
    const units = Number(delta);
    void act(async () => {
      // One key per adjustment, so a retried request is applied once.
      await call(`/products/${product.id}/stock`, { method: "POST", body: { delta: units }, headers: { "Idempotency-Key": crypto.randomUUID() } });
      setDelta("");
    }, `Stock adjusted by ${units}; the inventory applies it in a moment.`);
  };
  const remove = () => {
    if (window.confirm(`Delete ${product.name} from the catalog?`)) {
      void act(() => call<void>(`/products/${product.id}`, { method: "DELETE" }), "Deleted.");
    }
  };
  const id = product.id;
  return (
    <li className="card flex flex-col gap-3" aria-label={product.name}>
      <div className="flex flex-wrap items-center gap-x-4 gap-y-1">
        <h3 className="font-semibold">{product.name}</h3>
        <span className="text-sm text-slate-700">{product.sku}</span>
        <span>{formatMoney(product.price, product.currency)}</span>
        <span data-testid={`stock-${id}`}>{product.stock.available} in stock</span>
      </div>
      {editing ? (
        <form onSubmit={save} className="grid gap-2 sm:grid-cols-4">
          {(["name", "price", "category", "description"] as const).map((name) => (
            <div key={name}>
              <label htmlFor={`${name}-${id}`} className="label">{name[0].toUpperCase() + name.slice(1)}</label>
              <input id={`${name}-${id}`} className="field" value={edit[name]} onChange={(event) => setEdit({ ...edit, [name]: event.target.value })} />
            </div>
          ))}
          <div className="flex gap-2 sm:col-span-4">
            <button type="submit" className="btn">Save</button>
            <button type="button" className="btn-secondary" onClick={() => setEditing(false)}>Cancel</button>
          </div>
        </form>
      ) : (
        <div className="flex flex-wrap items-end gap-3">
          <button type="button" className="btn-secondary" onClick={() => setEditing(true)}>Edit</button>
          <form onSubmit={adjust} className="flex items-end gap-2">
            <div>
              <label htmlFor={`delta-${id}`} className="label">Stock change for {product.name}</label>
              <input id={`delta-${id}`} type="number" className="field w-32" value={delta} onChange={(event) => setDelta(event.target.value)} required />
            </div>
            <button type="submit" className="btn" disabled={!delta || Number(delta) === 0}>Adjust stock</button>
          </form>
          <button type="button" className="btn-danger" onClick={remove}>Delete</button>
        </div>
      )}
      <p role="status" className="text-sm text-green-900">{note}</p>
      <ErrorMessage error={error} title="The change was refused" />
    </li>
  );
}
