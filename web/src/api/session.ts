import { call } from "./client";
import { useAuth } from "../state/auth";
import type { TokenPair, User } from "./types";

/** Sign in: the tokens go to memory, then GET /users/me says who and in which role. */
export async function login(email: string, password: string): Promise<User> {
  const tokens = await call<TokenPair>("/auth/login", { method: "POST", body: { email, password } });
  useAuth.getState().setTokens(tokens);
  const me = await call<User>("/users/me");
  useAuth.getState().setUser(me);
  return me;
}

export async function register(name: string, email: string, password: string): Promise<User> {
  await call<User>("/auth/register", { method: "POST", body: { name, email, password } });
  return login(email, password);
}

/** Sign out: the refresh token is ended on the edge, and the session forgotten here. */
export async function logout(): Promise<void> {
  const { refreshToken, clear } = useAuth.getState();
  try {
    if (refreshToken) await call<void>("/auth/logout", { method: "POST", body: { refresh_token: refreshToken } });
  } finally {
    clear();
  }
}
