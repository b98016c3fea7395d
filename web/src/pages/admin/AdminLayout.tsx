import { NavLink, Outlet } from "react-router-dom";

const tab = ({ isActive }: { isActive: boolean }) =>
  `rounded px-3 py-1.5 ${isActive ? "bg-indigo-700 text-white" : "bg-white text-slate-900 hover:bg-slate-100"}`;

export function AdminLayout() {
  return (
    <div>
      <h1 className="mb-3 text-2xl font-bold">Admin console</h1>
      <nav aria-label="Console" className="mb-6 flex flex-wrap gap-2">
        <NavLink to="/admin" end className={tab}>Operations</NavLink>
        <NavLink to="/admin/products" className={tab}>Products</NavLink>
        <NavLink to="/admin/users" className={tab}>Users</NavLink>
        <NavLink to="/admin/orders" className={tab}>Orders</NavLink>
      </nav>
      <Outlet />
    </div>
  );
}
