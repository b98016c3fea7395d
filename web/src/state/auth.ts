import { create } from "zustand";
import type { User } from "../api/types";

/**
 * The signed-in session. The access token lives in memory only, and the refresh token never
 * reaches the page: the edge keeps it in an HttpOnly cookie that only /api/v1/auth receives,
 * so a reload or a new tab signs in again from it (``restoreSession``) while no script of the
 * page can read it.
 */
export interface AuthState {
  accessToken: string | null;
  user: User | null;
  /** Whether the session a reload may carry has been looked for yet. */
  restored: boolean;
  setAccessToken: (token: string) => void;
  setUser: (user: User | null) => void;
  setRestored: () => void;
  clear: () => void;
}

export const useAuth = create<AuthState>((set) => ({
  accessToken: null,
  user: null,
  restored: false,
  setAccessToken: (accessToken) => set({ accessToken }),
  setUser: (user) => set({ user }),
  setRestored: () => set({ restored: true }),
  clear: () => set({ accessToken: null, user: null }),
}));
