import { create } from "zustand";
import type { TokenPair, User } from "../api/types";

/**
 * The signed-in session, in memory only: tokens are never written to localStorage (or any
 * storage a script of another page could read back). A reload starts signed out.
 */
export interface AuthState {
  accessToken: string | null;
  refreshToken: string | null;
  user: User | null;
  setTokens: (tokens: TokenPair) => void;
  setUser: (user: User | null) => void;
  clear: () => void;
}

export const useAuth = create<AuthState>((set) => ({
  accessToken: null,
  refreshToken: null,
  user: null,
  setTokens: (tokens) => set({ accessToken: tokens.access_token, refreshToken: tokens.refresh_token }),
  setUser: (user) => set({ user }),
  clear: () => set({ accessToken: null, refreshToken: null, user: null }),
}));
