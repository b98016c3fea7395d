import { Link, useParams } from "react-router-dom";
import { useQueries, useQuery, useQueryClient } from "@tanstack/react-query";
import { attachmentName, call, send } from "../api/client";
import { ApiError, rejectionText } from "../api/errors";
import type { CancelAccepted, Order, Product } from "../api/types";
import { ErrorMessage, Loading } from "../components/Status";
import { TableHead } from "../components/TableHead";
import { useAction } from "../components/useAction";
import { formatMoney } from "../state/cart";

// The edge answers a long poll as soon as the order leaves `pending`, or after this long.
const LONG_POLL_SECONDS = 25;

const STATUS_TEXT: Record<Order["status"], string> = {
  pending: "Pending: we are reserving your stock and taking payment…",
  confirmed: "Confirmed: your order is on its way.",
  rejected: "Rejected",
  cancelled: "Cancelled: any payment was refunded.",
};

/** An order, followed live: while pending, each read is a long poll (GET ?wait=). */
export function OrderPage() {
  const { orderId = "" } = useParams();
  const queries = useQueryClient();
  const order = useQuery({
    queryKey: ["order", orderId],
    queryFn: async ({ signal }) => {
      const known = queries.getQueryData<Order>(["order", orderId]);
      const wait = known?.status === "pending" ? LONG_POLL_SECONDS : 0;
      try {
        return await call<Order>(`/orders/${orderId}?wait=${wait}`, { signal });
      } catch (error) {
        // Too many long polls of this account at once (other tabs): keep following after
        // the pause the edge asks for, showing what is known meanwhile.
        if (!known || !(error instanceof ApiError) || error.status !== 429) throw error;
        await new Promise((resume) => setTimeout(resume, 1000 * (error.retryAfter ?? 5)));
        return known;
      }
    },
    // Pending: ask again at once (the next read waits on the edge); settled: stop.
    refetchInterval: (current) => (current.state.data?.status === "pending" ? 1 : false),
    refetchIntervalInBackground: true,
  });
  const { run: runCancel, busy: cancelling, error: cancelError } = useAction();
  // The lines name products by id; their names come from the catalog (a retired product
  // keeps its id only).
  const names = useQueries({
    queries: (order.data?.items ?? []).map((item) => ({
      queryKey: ["product", item.product_id],
      queryFn: ({ signal }: { signal: AbortSignal }) => call<Product>(`/products/${item.product_id}`, { signal }),
      staleTime: 60_000,
      retry: false,
    })),
  });

  if (order.isPending) return <Loading what="Loading your order" />;
  if (order.error) return <ErrorMessage error={order.error} title="The order could not be loaded" />;
  const current = order.data;

  const cancel = () =>
    runCancel(async () => {
      await call<CancelAccepted>(`/orders/${orderId}/cancel`, { method: "POST" });
      await queries.invalidateQueries({ queryKey: ["order", orderId] });
    });

  return (
    <section className="flex flex-col gap-4">
      <h1 className="text-2xl font-bold">Order {current.id.slice(0, 8)}</h1>
      <div
        role="status"
        aria-live="polite"
        data-testid="order-status"
        data-status={current.status}
        className={`card text-lg ${
          current.status === "confirmed" ? "border-green-400 bg-green-50" : current.status === "rejected" ? "border-red-400 bg-red-50" : ""
        }`}
      >
        <p className="font-semibold">{STATUS_TEXT[current.status]}</p>
        {current.status === "rejected" && <p data-testid="rejection-reason">{rejectionText(current.reason)}</p>}
      </div>
      <table className="w-full bg-white text-left">
        <caption className="sr-only">Items of the order</caption>
        <TableHead columns={["Product", "Quantity", "Price", "Subtotal"]} />
        <tbody>
          {current.items.map((item, index) => (
            <tr key={item.product_id} className="border-b">
              <td className="p-2">
                <Link to={`/products/${item.product_id}`} className="link">
                  {names[index]?.data?.name ?? `product ${item.product_id.slice(0, 8)}`}
                </Link>
              </td>
              <td className="p-2">{item.quantity}</td>
              <td className="p-2">{formatMoney(item.price, current.currency)}</td>
              <td className="p-2">{formatMoney(item.subtotal, current.currency)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="text-lg">Total: <strong>{formatMoney(current.total, current.currency)}</strong></p>
      <div className="flex flex-wrap gap-3">
        {(current.status === "pending" || current.status === "confirmed") && (
          <button type="button" className="btn-danger" onClick={() => void cancel()} disabled={cancelling}>
            {cancelling ? "Cancelling…" : "Cancel order"}
          </button>
        )}
        {(current.status === "confirmed" || current.status === "cancelled") && <InvoiceButton orderId={current.id} />}
      </div>
      <ErrorMessage error={cancelError} title="The order could not be cancelled" />
    </section>
  );
}

/** Downloads the order's invoice PDF with the session's token, under the edge's file name. */
export function InvoiceButton({ orderId }: { orderId: string }) {
  const { run, busy, error } = useAction();
  const download = () =>
    run(async () => {
      const response = await send(`/orders/${orderId}/invoice`, { headers: { Accept: "application/pdf" } });
      const name = attachmentName(response.headers.get("Content-Disposition"), `invoice-${orderId}.pdf`);
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = name;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    });
  return (
    <div>
      <button type="button" className="btn-secondary" onClick={() => void download()} disabled={busy}>
        {busy ? "Preparing the invoice…" : "Download invoice"}
      </button>
      <ErrorMessage error={error} title="The invoice could not be downloaded" />
    </div>
  );
}
