import { describe, expect, it } from "vitest";
import { bars } from "../pages/admin/AdminOperations";
import type { OrderStatistics } from "../api/types";

const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);

function figures(minutes: number, perMinute: [number, number][]): OrderStatistics {
  return {
    minutes,
    since: new Date(NOW - minutes * 60_000).toISOString(),
    placed: perMinute.reduce((sum, [, placed]) => sum + placed, 0),
    per_minute: perMinute.map(([ago, placed]) => ({ minute: new Date(NOW - ago * 60_000).toISOString(), placed })),
    by_status: {},
    rejections: [],
  };
}

describe("the orders-per-minute chart", () => {
  it("has a bar for every minute of an hour, the empty ones at zero", () => {
    const chart = bars(figures(60, [[30, 4], [2, 1]]), NOW);
    expect(chart).toHaveLength(60);
    expect(chart.reduce((sum, bar) => sum + bar.placed, 0)).toBe(5);
    expect(chart[30].placed).toBe(4);
    expect(chart[58].placed).toBe(1);
  });

  it("groups a day into sixty bars and loses no order", () => {
    const chart = bars(figures(1440, [[1000, 3], [999, 2], [1, 7]]), NOW);
    expect(chart).toHaveLength(60);
    expect(chart.reduce((sum, bar) => sum + bar.placed, 0)).toBe(12);
  });
});
