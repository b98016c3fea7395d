import { useState, type FormEvent } from "react";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { call, query } from "../../api/client";
import type { Order, OrderStatus, Page } from "../../api/types";
import { ErrorMessage, Loading } from "../../components/Status";
import { Pager, useCursors } from "../../components/Pager";
import { OrderTable } from "../OrdersPage";

export function AdminOrders() {
  const [status, setStatus] = useState<OrderStatus | "">("");
  const [userId, setUserId] = useState("");
  const [filters, setFilters] = useState({ status: "", user_id: "" });
  const paging = useCursors(JSON.stringify(filters));
  const orders = useQuery({
    queryKey: ["all-orders", filters, paging.cursor],
    queryFn: ({ signal }) => call<Page<Order>>(`/orders${query({ ...filters, cursor: paging.cursor })}`, { signal }),
    placeholderData: keepPreviousData,
  });
  const apply = (event: FormEvent) => {
    event.preventDefault();
    setFilters({ status, user_id: userId.trim() });
  };
  return (
    <section aria-labelledby="orders-title">
      <h2 id="orders-title" className="mb-3 text-xl font-semibold">All orders</h2>
      <form onSubmit={apply} className="card mb-4 flex flex-wrap items-end gap-3">
        <div>
          <label htmlFor="status-filter" className="label">Status</label>
          <select id="status-filter" className="field" value={status} onChange={(event) => setStatus(event.target.value as OrderStatus | "")}>
            <option value="">any</option>
            <option value="pending">pending</option>
            <option value="confirmed">confirmed</option>
            <option value="rejected">rejected</option>
            <option value="cancelled">cancelled</option>
          </select>
        </div>
        <div>
          <label htmlFor="user-filter" className="label">User id</label>
          <input id="user-filter" className="field w-80" value={userId} onChange={(event) => setUserId(event.target.value)} />
        </div>
        <button type="submit" className="btn">Filter</button>
      </form>
      {orders.isPending && <Loading what="Loading the orders" />}
      <ErrorMessage error={orders.error} title="The orders could not be loaded" />
      {orders.data?.items.length === 0 && <p>No orders match.</p>}
      {orders.data && orders.data.items.length > 0 && (
        <>
          <OrderTable orders={orders.data.items} showUser />
          <Pager page={paging.page} nextCursor={orders.data.next_cursor} onNext={paging.next} onPrevious={paging.previous} />
        </>
      )}
    </section>
  );
}
