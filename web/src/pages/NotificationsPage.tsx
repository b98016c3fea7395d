import { Link } from "react-router-dom";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { call, query } from "../api/client";
import type { Notification, Page } from "../api/types";
import { ErrorMessage, Loading } from "../components/Status";
import { Pager, useCursors } from "../components/Pager";

export function NotificationsPage() {
  const paging = useCursors("mine");
  const notes = useQuery({
    queryKey: ["notifications", paging.cursor],
    queryFn: ({ signal }) => call<Page<Notification>>(`/users/me/notifications${query({ cursor: paging.cursor })}`, { signal }),
    placeholderData: keepPreviousData,
  });
  return (
    <section>
      <h1 className="mb-4 text-2xl font-bold">Notifications</h1>
      <p className="mb-4 text-slate-700">The e-mails we sent you about your orders (only to a verified address).</p>
      {notes.isPending && <Loading what="Loading your notifications" />}
      <ErrorMessage error={notes.error} title="Your notifications could not be loaded" />
      {notes.data?.items.length === 0 && <p>No notifications yet.</p>}
      {notes.data && notes.data.items.length > 0 && (
        <>
          <ul className="flex flex-col gap-2">
            {notes.data.items.map((note) => (
              <li key={note.id} className="card">
                <p className="font-semibold">{note.subject}</p>
                <p className="text-sm text-slate-700">
                  {new Date(note.sent_at).toLocaleString()} · <Link to={`/orders/${note.order_id}`} className="link">the order</Link>
                </p>
              </li>
            ))}
          </ul>
          <Pager page={paging.page} nextCursor={notes.data.next_cursor} onNext={paging.next} onPrevious={paging.previous} />
        </>
      )}
    </section>
  );
}
