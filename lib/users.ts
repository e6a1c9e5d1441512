/** Users as other parts of the domain need them. */
import type { Queryable } from "./db.ts";
import { NotFound } from "./errors.ts";

/** Throws NotFound unless a user with this id exists. */
export async function requireUser(q: Queryable, id: number): Promise<void> {
  const [row] = await q`SELECT 1 FROM users WHERE id = ${id}`;
  if (!row) throw new NotFound(`No user with id ${id}`);
}
