import type { ReactNode } from "react";
import { Navigate, useLocation } from "react-router-dom";
import { useAuth } from "../state/auth";
import { Loading } from "./Status";

/**
 * Its children for a signed-in user (an admin, with ``admin``); else the login page. Until the
 * page has looked for the session a reload carries, it waits rather than send a signed-in
 * shopper to the login page.
 */
export function RequireAuth({ children, admin = false }: { children: ReactNode; admin?: boolean }) {
  const user = useAuth((state) => state.user);
  const restored = useAuth((state) => state.restored);
  const location = useLocation();
  if (!restored) return <Loading what="Signing you in" />;
  if (!user) return <Navigate to={`/login?next=${encodeURIComponent(location.pathname)}`} replace />;
  if (admin && user.role !== "admin") {
    return (
      <p role="alert" className="text-red-900">
        The console is for administrators only.
      </p>
    );
  }
  return <>{children}</>;
}
