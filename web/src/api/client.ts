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

// One refresh at a time: requests that all met an expired token share it.
let refreshing: Promise<boolean> | null = null;

async function refreshTokens(): Promise<boolean> {
  const { refreshToken, setTokens, clear } = useAuth.getState();
  if (!refreshToken) return false;
  const response = await fetch(`${API}/auth/refresh`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: refreshToken }),
  });
  if (!response.ok) {
    clear(); // the login ended (logged out elsewhere, expired): sign in again
    return false;
  }
  setTokens((await response.json()) as TokenPair);
  return true;
}

function refreshOnce(): Promise<boolean> {
  refreshing ??= refreshTokens().finally(() => {
    refreshing = null;
  });
  return refreshing;
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
  if (response.status === 401 && useAuth.getState().refreshToken && (await refreshOnce())) {
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
