import { Link, NavLink, Outlet, useNavigate } from "react-router-dom";
import { logout } from "../api/session";
import { useAuth } from "../state/auth";
import { useCart } from "../state/cart";

const navClass = ({ isActive }: { isActive: boolean }) =>
  `rounded px-2 py-1 ${isActive ? "bg-indigo-100 font-semibold text-indigo-950" : "text-slate-800 hover:bg-slate-100"}`;

export function Layout() {
  const user = useAuth((state) => state.user);
  const count = useCart((state) => state.lines.reduce((sum, line) => sum + line.quantity, 0));
  const navigate = useNavigate();
  return (
    <div className="min-h-screen">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:bg-white focus:p-2">
        Skip to content
      </a>
      <header className="border-b border-slate-200 bg-white">
        <div className="mx-auto flex max-w-6xl flex-wrap items-center gap-x-4 gap-y-2 px-4 py-3">
          <Link to="/" className="text-xl font-bold text-indigo-900">
            Conveyor shop
          </Link>
          <nav aria-label="Main" className="flex flex-1 flex-wrap items-center gap-2">
            <NavLink to="/" end className={navClass}>
              Catalog
            </NavLink>
            <NavLink to="/cart" className={navClass}>
              Cart ({count})
            </NavLink>
            {user && (
              <>
                <NavLink to="/orders" className={navClass}>
                  Orders
                </NavLink>
                <NavLink to="/notifications" className={navClass}>
                  Notifications
                </NavLink>
              </>
            )}
            {user?.role === "admin" && (
              <NavLink to="/admin" className={navClass}>
                Console
              </NavLink>
            )}
          </nav>
          <div className="flex items-center gap-2">
            {user ? (
              <>
                <span className="text-sm text-slate-700">{user.name}</span>
                <button
                  type="button"
                  className="btn-secondary"
                  onClick={() => void logout().finally(() => navigate("/"))}
                >
                  Log out
                </button>
              </>
            ) : (
              <>
                <NavLink to="/login" className={navClass}>
                  Log in
                </NavLink>
                <NavLink to="/register" className={navClass}>
                  Register
                </NavLink>
              </>
            )}
          </div>
        </div>
      </header>
      <main id="main" className="mx-auto max-w-6xl px-4 py-6">
        <Outlet />
      </main>
    </div>
  );
}
