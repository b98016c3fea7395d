import { useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { call, query } from "../../api/client";
import type { OrderStatistics } from "../../api/types";
import { ErrorMessage, Loading } from "../../components/Status";

const REFRESH_MS = 5000;
// The chart's bars: one per minute up to an hour, wider windows grouped into this many.
const MOST_BARS = 60;

/** Orders per bar over the whole window, empty minutes included (the API leaves them out). */
export function bars(figures: OrderStatistics, now: number = Date.now()): { start: number; placed: number }[] {
  const minute = 60_000;
  const count = Math.min(figures.minutes, MOST_BARS);
  const width = (figures.minutes * minute) / count;
  const first = now - figures.minutes * minute;
  const slots = Array.from({ length: count }, (_, index) => ({ start: first + index * width, placed: 0 }));
  for (const entry of figures.per_minute) {
    const index = Math.floor((Date.parse(entry.minute) - first) / width);
    slots[Math.min(count - 1, Math.max(0, index))].placed += entry.placed;
  }
  return slots;
}

/** The live operations panel: orders per minute and why orders were rejected. */
export function AdminOperations() {
  const [minutes, setMinutes] = useState(60);
  const figures = useQuery({
    queryKey: ["order-statistics", minutes],
    queryFn: ({ signal }) => call<OrderStatistics>(`/statistics/orders${query({ minutes })}`, { signal }),
    refetchInterval: REFRESH_MS,
  });
  const data = figures.data;
  const chart = data ? bars(data) : [];
  const busiest = Math.max(1, ...chart.map((bar) => bar.placed));
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
            {data.placed === 0 ? (
              <p>No orders in this window.</p>
            ) : (
              <ol className="flex h-40 items-end gap-px border-b border-slate-300" aria-label="Orders per minute">
                {chart.map((bar) => (
                  <li
                    key={bar.start}
                    className="flex-1 bg-indigo-700"
                    style={{ height: `${(100 * bar.placed) / busiest}%` }}
                    title={`${new Date(bar.start).toLocaleTimeString()}: ${bar.placed}`}
                  >
                    <span className="sr-only">{`${new Date(bar.start).toLocaleTimeString()}: ${bar.placed} orders`}</span>
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
