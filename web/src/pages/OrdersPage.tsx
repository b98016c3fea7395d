import { Link } from "react-router-dom";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { call, query } from "../api/client";
import type { Order, Page } from "../api/types";
import { ErrorMessage, Loading } from "../components/Status";
import { TableHead } from "../components/TableHead";
import { Pager, useCursors } from "../components/Pager";
import { formatMoney } from "../state/cart";

/** A table of orders, newest first, each linked to its page. */
export function OrderTable({ orders, showUser = false }: { orders: Order[]; showUser?: boolean }) {
  return (
    <table className="w-full bg-white text-left">
      <caption className="sr-only">Orders</caption>
      <TableHead columns={["Order", ...(showUser ? ["User"] : []), "Placed", "Status", "Total"]} />
      <tbody>
        {orders.map((order) => (
          <tr key={order.id} className="border-b">
            <td className="p-2"><Link to={`/orders/${order.id}`} className="link">{order.id.slice(0, 8)}</Link></td>
            {showUser && <td className="p-2 font-mono text-sm">{order.user_id.slice(0, 8)}</td>}
            <td className="p-2">{new Date(order.created_at).toLocaleString()}</td>
            <td className="p-2">{order.status}{order.reason ? ` (${order.reason.replace(/_/g, " ")})` : ""}</td>
            <td className="p-2">{formatMoney(order.total, order.currency)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function OrdersPage() {
  const paging = useCursors("mine");
  const orders = useQuery({
    queryKey: ["my-orders", paging.cursor],
    queryFn: ({ signal }) => call<Page<Order>>(`/orders${query({ cursor: paging.cursor })}`, { signal }),
    placeholderData: keepPreviousData,
  });
  return (
    <section>
      <h1 className="mb-4 text-2xl font-bold">Your orders</h1>
      {orders.isPending && <Loading what="Loading your orders" />}
      <ErrorMessage error={orders.error} title="Your orders could not be loaded" />
      {orders.data?.items.length === 0 && <p>No orders yet.</p>}
      {orders.data && orders.data.items.length > 0 && (
        <>
          <OrderTable orders={orders.data.items} />
          <Pager page={paging.page} nextCursor={orders.data.next_cursor} onNext={paging.next} onPrevious={paging.previous} />
        </>
      )}
    </section>
  );
}
