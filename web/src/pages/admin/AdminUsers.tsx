import { useState } from "react";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { call, query } from "../../api/client";
import type { Page, Role, User, UserStatus } from "../../api/types";
import { ErrorMessage, Loading } from "../../components/Status";
import { TableHead } from "../../components/TableHead";
import { Pager, useCursors } from "../../components/Pager";

export function AdminUsers() {
  const paging = useCursors("users");
  const queries = useQueryClient();
  const users = useQuery({
    queryKey: ["users", paging.cursor],
    queryFn: ({ signal }) => call<Page<User>>(`/users${query({ cursor: paging.cursor })}`, { signal }),
    placeholderData: keepPreviousData,
  });
  const [error, setError] = useState<unknown>(null);
  const change = async (user: User, body: { role?: Role; status?: UserStatus }) => {
    setError(null);
    try {
      await call<User>(`/users/${user.id}`, { method: "PATCH", body });
      await queries.invalidateQueries({ queryKey: ["users"] });
    } catch (failure) {
      setError(failure);
    }
  };
  return (
    <section aria-labelledby="users-title">
      <h2 id="users-title" className="mb-3 text-xl font-semibold">Users</h2>
      <ErrorMessage error={error} title="The user could not be changed" />
      {users.isPending && <Loading what="Loading the users" />}
      <ErrorMessage error={users.error} title="The users could not be loaded" />
      {users.data && (
        <>
          <div className="overflow-x-auto">
            <table className="w-full bg-white text-left">
              <caption className="sr-only">Accounts</caption>
              <TableHead columns={["Name", "E-mail", "Role", "Status"]} />
              <tbody>
                {users.data.items.map((user) => (
                  <tr key={user.id} className="border-b">
                    <td className="p-2">{user.name}</td>
                    <td className="p-2">{user.email}{user.email_verified ? "" : " (unverified)"}</td>
                    <td className="p-2">
                      <label htmlFor={`role-${user.id}`} className="sr-only">Role of {user.email}</label>
                      <select id={`role-${user.id}`} className="field" value={user.role} onChange={(event) => void change(user, { role: event.target.value as Role })}>
                        <option value="user">user</option>
                        <option value="admin">admin</option>
                      </select>
                    </td>
                    <td className="p-2">
                      <label htmlFor={`status-${user.id}`} className="sr-only">Status of {user.email}</label>
                      <select id={`status-${user.id}`} className="field" value={user.status} onChange={(event) => void change(user, { status: event.target.value as UserStatus })}>
                        <option value="active">active</option>
                        <option value="disabled">disabled</option>
                      </select>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager page={paging.page} nextCursor={users.data.next_cursor} onNext={paging.next} onPrevious={paging.previous} />
        </>
      )}
    </section>
  );
}
