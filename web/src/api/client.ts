import { ApiError } from "./errors";
import { useAuth } from "../state/auth";
import type { TokenPair } from "./types";

/** Every call goes to the public REST API on the same origin (the edge serves this app). */
export const API = "/api/v1";

export interface CallOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

// Whether this browser signed in and has not signed out since: only then can a reload find
// a refresh cookie, so an anonymous visitor's page load does not ask for one in vain. It is
// no secret (the token itself is in the HttpOnly cookie).
const SIGNED_IN_MARK = "conveyor-signed-in";

export function markSignedIn(signedIn: boolean): void {
  if (signedIn) localStorage.setItem(SIGNED_IN_MARK, "1");
  else localStorage.removeItem(SIGNED_IN_MARK);
}

export function mayHaveSession(): boolean {
  return localStorage.getItem(SIGNED_IN_MARK) !== null;
}

async function exchangeRefreshCookie(): Promise<boolean> {
  let response: Response;
  try {
    // No body: the edge takes the refresh token from its cookie and sets the next one.
    response = await fetch(`${API}/auth/refresh`, { method: "POST", credentials: "same-origin" });
  } catch {
    return false; // unreachable: the session may still be good, so it is kept
  }
  if (!response.ok) {
    useAuth.getState().clear(); // the login ended (logged out elsewhere, expired): sign in again
    markSignedIn(false);
    return false;
  }
  useAuth.getState().setAccessToken(((await response.json()) as TokenPair).access_token);
  return true;
}

// One refresh at a time: requests that all met an expired token share it.
let refreshing: Promise<boolean> | null = null;

/**
 * A new access token from the refresh cookie, shared by every caller meanwhile. Tabs share
 * the cookie, and two tabs refreshing at once would send one refresh token twice, which ends
 * the login (a replayed refresh token looks stolen); the browser's lock makes them take turns,
 * so the second sends the token the first was given.
 */
export function refreshOnce(): Promise<boolean> {
  refreshing ??= inTurnWithOtherTabs(exchangeRefreshCookie).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function inTurnWithOtherTabs(exchange: () => Promise<boolean>): Promise<boolean> {
  if (!navigator.locks) return exchange();
  return await navigator.locks.request("conveyor-refresh", exchange);
}

/**
 * A request to the API with the session's access token. On a 401 it refreshes the tokens
 * once (POST /auth/refresh) and tries again; an error answer becomes an ApiError.
 */
export async function send(path: string, options: CallOptions = {}): Promise<Response> {
  const attempt = async (): Promise<Response> => {
    const token = useAuth.getState().accessToken;
    const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    try {
      return await fetch(`${API}${path}`, {
        method: options.method ?? "GET",
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: options.signal,
      });
    } catch (error) {
      if (error instanceof DOMException && error.name === "AbortError") throw error;
      throw new ApiError(0, "the shop cannot be reached");
    }
  };
  let response = await attempt();
  if (response.status === 401 && useAuth.getState().accessToken && (await refreshOnce())) {
    response = await attempt();
  }
  if (!response.ok) throw await ApiError.from(response);
  return response;
}

/** ``send`` for a JSON answer (undefined for 204). */
export async function call<T>(path: string, options: CallOptions = {}): Promise<T> {
  const response = await send(path, options);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/** A query string of the set values only. */
export function query(params: Record<string, string | number | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** The file name a Content-Disposition header gives, or ``fallback``. */
export function attachmentName(header: string | null, fallback: string): string {
  const match = header?.match(/filename\*?=(?:UTF-8'')?"?([^";]+)"?/i);
  return match ? decodeURIComponent(match[1]) : fallback;
}
