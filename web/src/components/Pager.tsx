import { useState } from "react";

/** Cursor paging: the cursors of the pages seen so far, so "Previous" goes back. */
export function useCursors(resetKey: string) {
  const [state, setState] = useState<{ key: string; cursors: (string | null)[] }>({ key: resetKey, cursors: [null] });
  // New filters start again from the first page.
  const cursors = state.key === resetKey ? state.cursors : [null];
  return {
    cursor: cursors[cursors.length - 1],
    page: cursors.length,
    next: (cursor: string) => setState({ key: resetKey, cursors: [...cursors, cursor] }),
    previous: () => setState({ key: resetKey, cursors: cursors.slice(0, -1) }),
  };
}

export function Pager({
  page,
  nextCursor,
  onNext,
  onPrevious,
}: {
  page: number;
  nextCursor: string | null | undefined;
  onNext: (cursor: string) => void;
  onPrevious: () => void;
}) {
  return (
    <nav aria-label="Pages" className="mt-4 flex items-center gap-3">
      <button type="button" className="btn-secondary" disabled={page <= 1} onClick={onPrevious}>
        Previous
      </button>
      <span className="text-slate-700">Page {page}</span>
      <button type="button" className="btn-secondary" disabled={!nextCursor} onClick={() => nextCursor && onNext(nextCursor)}>
        Next
      </button>
    </nav>
  );
}
