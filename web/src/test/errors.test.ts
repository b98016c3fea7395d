import { describe, expect, it } from "vitest";
import { ApiError, describeError, rejectionText, retryAfterSeconds } from "../api/errors";

describe("error messages", () => {
  it("shows the problem's detail", () => {
    expect(describeError(new ApiError(409, "the order is already cancelled"))).toBe("the order is already cancelled");
  });

  it("says when to retry after a 429", () => {
    expect(describeError(new ApiError(429, "rate limit reached", 7))).toContain("Try again in 7 seconds");
  });

  it("says to try again after a 503", () => {
    const text = describeError(new ApiError(503, "Kafka is unavailable", 5));
    expect(text).toContain("try again in 5 seconds");
    expect(text).toContain("Kafka is unavailable");
  });

  it("reads Retry-After as seconds or as a date", () => {
    expect(retryAfterSeconds("12")).toBe(12);
    expect(retryAfterSeconds(new Date(Date.UTC(2030, 0, 1, 0, 0, 30)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(30);
    expect(retryAfterSeconds(null)).toBeNull();
  });

  it("explains every rejection reason in words", () => {
    expect(rejectionText("payment_declined")).toMatch(/card was declined/);
    expect(rejectionText("out_of_stock")).toMatch(/stock/);
    expect(rejectionText("payment_unavailable")).toMatch(/payment service/);
    expect(rejectionText("timed_out")).toMatch(/too long/);
  });

  it("reads the detail out of a problem+json answer", async () => {
    const answer = new Response(JSON.stringify({ status: 422, title: "Unprocessable", detail: "delta must not be zero" }), {
      status: 422,
      headers: { "Content-Type": "application/problem+json" },
    });
    const error = await ApiError.from(answer);
    expect(error.status).toBe(422);
    expect(error.detail).toBe("delta must not be zero");
  });
});
