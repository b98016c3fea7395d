import { describeError } from "../api/errors";

/** An error from the API, in words, announced to screen readers. */
export function ErrorMessage({ error, title = "Something went wrong" }: { error: unknown; title?: string }) {
  if (!error) return null;
  return (
    <div role="alert" className="rounded-md border border-red-300 bg-red-50 p-3 text-red-900">
      <p className="font-semibold">{title}</p>
      <p>{describeError(error)}</p>
    </div>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p role="status" className="animate-pulse text-slate-700">
      {what}…
    </p>
  );
}
