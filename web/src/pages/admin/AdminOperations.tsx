import { useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { call, query } from "../../api/client";
import type { OrderStatistics } from "../../api/types";
import { ErrorMessage, Loading } from "../../components/Status";

const REFRESH_MS = 5000;

/** The live operations panel: orders per minute and why orders were rejected. */
export function AdminOperations() {
  const [minutes, setMinutes] = useState(60);
  const figures = useQuery({
    queryKey: ["order-statistics", minutes],
    queryFn: ({ signal }) => call<OrderStatistics>(`/statistics/orders${query({ minutes })}`, { signal }),
    refetchInterval: REFRESH_MS,
  });
  const data = figures.data;
  const busiest = Math.max(1, ...(data?.per_minute.map((m) => m.placed) ?? [1]));
  return (
    <section aria-labelledby="ops-title" className="flex flex-col gap-4">
      <div className="flex flex-wrap items-end gap-4">
        <h2 id="ops-title" className="text-xl font-semibold">Operations</h2>
        <div>
          <label htmlFor="window" className="label">Window</label>
          <select id="window" className="field" value={minutes} onChange={(event) => setMinutes(Number(event.target.value))}>
            <option value={15}>Last 15 minutes</option>
            <option value={60}>Last hour</option>
            <option value={360}>Last 6 hours</option>
            <option value={1440}>Last day</option>
          </select>
        </div>
      </div>
      {figures.isPending && <Loading what="Loading the figures" />}
      <ErrorMessage error={figures.error} title="The figures could not be loaded" />
      {data && (
        <div className="grid gap-4 lg:grid-cols-3">
          <div className="card">
            <h3 className="font-semibold">Orders placed</h3>
            <p className="text-3xl font-bold" data-testid="orders-placed">{data.placed}</p>
            <p className="text-sm text-slate-700">{(data.placed / data.minutes).toFixed(2)} per minute on average</p>
            <dl className="mt-3 grid grid-cols-2 gap-1 text-sm">
              {(["pending", "confirmed", "rejected", "cancelled"] as const).map((status) => (
                <div key={status} className="contents">
                  <dt className="text-slate-700">{status}</dt>
                  <dd className="font-medium">{data.by_status[status] ?? 0}</dd>
                </div>
              ))}
            </dl>
          </div>
          <div className="card lg:col-span-2">
            <h3 className="mb-2 font-semibold">Orders per minute</h3>
            {data.per_minute.length === 0 ? (
              <p>No orders in this window.</p>
            ) : (
              <ol className="flex h-40 items-end gap-1" aria-label="Orders per minute">
                {data.per_minute.map((minute) => (
                  <li
                    key={minute.minute}
                    className="flex-1 bg-indigo-700"
                    style={{ height: `${(100 * minute.placed) / busiest}%`, minWidth: "4px" }}
                    title={`${new Date(minute.minute).toLocaleTimeString()}: ${minute.placed}`}
                  >
                    <span className="sr-only">{`${new Date(minute.minute).toLocaleTimeString()}: ${minute.placed} orders`}</span>
                  </li>
                ))}
              </ol>
            )}
          </div>
          <div className="card lg:col-span-3">
            <h3 className="mb-2 font-semibold">Rejection reasons</h3>
            {data.rejections.length === 0 ? (
              <p>No rejected orders in this window.</p>
            ) : (
              <ul data-testid="rejections">
                {data.rejections.map((rejection) => (
                  <li key={rejection.reason}>
                    {rejection.reason.replace(/_/g, " ")}: <strong>{rejection.count}</strong>
                  </li>
                ))}
              </ul>
            )}
          </div>
        </div>
      )}
    </section>
  );
}
