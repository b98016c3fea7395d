import { call, markSignedIn, mayHaveSession, refreshOnce } from "./client";
import { useAuth } from "../state/auth";
import { useCart } from "../state/cart";
import type { TokenPair, User } from "./types";

/**
 * Sign in: the access token goes to memory (the edge sets the refresh token as an HttpOnly
 * cookie), then GET /users/me says who and in which role.
 */
export async function login(email: string, password: string): Promise<User> {
  const tokens = await call<TokenPair>("/auth/login", { method: "POST", body: { email, password } });
  useAuth.getState().setAccessToken(tokens.access_token);
  markSignedIn(true);
  const me = await call<User>("/users/me");
  useAuth.getState().setUser(me);
  return me;
}

export async function register(name: string, email: string, password: string): Promise<User> {
  await call<User>("/auth/register", { method: "POST", body: { name, email, password } });
  return login(email, password);
}

/** On a page load: the session an earlier sign-in left in this browser's refresh cookie, if any. */
export async function restoreSession(): Promise<void> {
  try {
    if (mayHaveSession() && (await refreshOnce())) {
      useAuth.getState().setUser(await call<User>("/users/me"));
    }
  } catch {
    useAuth.getState().clear(); // unreachable or refused: the page starts signed out
  } finally {
    useAuth.getState().setRestored();
  }
}

/**
 * Sign out: the login is ended on the edge (which deletes the cookie), and the session and
 * the cart are forgotten here, so the next person at this browser finds neither.
 */
export async function logout(): Promise<void> {
  try {
    await call<void>("/auth/logout", { method: "POST" });
  } finally {
    useAuth.getState().clear();
    markSignedIn(false);
    useCart.getState().clear();
  }
}
