import type { Problem, RejectionReason } from "./types";

/** An error answer of the edge (problem+json), or a network failure (status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly detail: string;
  /** Seconds from Retry-After, when the edge sent one (429, 503). */
  readonly retryAfter: number | null;

  constructor(status: number, detail: string, retryAfter: number | null = null) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }

  static async from(response: Response): Promise<ApiError> {
    let detail = response.statusText || `HTTP ${response.status}`;
    try {
      const problem = (await response.json()) as Problem;
      detail = problem.detail ?? problem.title ?? detail;
    } catch {
      // Not problem+json (a proxy's page): the status line is all there is.
    }
    return new ApiError(response.status, detail, retryAfterSeconds(response.headers.get("Retry-After")));
  }
}

/** Retry-After in seconds, from either of its forms (delta-seconds or an HTTP date). */
export function retryAfterSeconds(header: string | null, now: number = Date.now()): number | null {
  if (header === null || header.trim() === "") return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const when = Date.parse(header);
  return Number.isNaN(when) ? null : Math.max(0, Math.ceil((when - now) / 1000));
}

/** What to tell a shopper about an error: the edge's detail, and when to try again. */
export function describeError(error: unknown): string {
  if (!(error instanceof ApiError)) {
    return error instanceof Error ? error.message : "Something went wrong.";
  }
  if (error.status === 0) return "The shop cannot be reached. Check your connection and try again.";
  if (error.status === 429) {
    const wait = error.retryAfter !== null ? ` Try again in ${plural(error.retryAfter, "second")}.` : " Try again shortly.";
    return `Too many requests: ${error.detail}.${wait}`;
  }
  if (error.status === 503) {
    const wait = error.retryAfter !== null ? ` in ${plural(error.retryAfter, "second")}` : " in a moment";
    return `The shop is busy or briefly unavailable (${error.detail}). Please try again${wait}.`;
  }
  return error.detail;
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

const REASONS: Record<RejectionReason, string> = {
  out_of_stock: "Not enough stock was left for your order. Nothing was charged.",
  payment_declined: "Your card was declined. Nothing was charged; try another card.",
  payment_unavailable: "The payment service did not answer. Nothing was charged; please try again later.",
  timed_out: "Your order took too long to settle and was stopped. Nothing was kept or charged.",
};

/** The human words for why an order was rejected. */
export function rejectionText(reason: RejectionReason | null): string {
  return reason === null ? "Your order was rejected." : REASONS[reason];
}
