import type { ReactNode } from "react";

/** A table's header row: one column header per entry. */
export function TableHead({ columns }: { columns: ReactNode[] }) {
  return (
    <thead>
      <tr className="border-b">
        {columns.map((column, index) => (
          <th key={index} scope="col" className="p-2">
            {column}
          </th>
        ))}
      </tr>
    </thead>
  );
}
