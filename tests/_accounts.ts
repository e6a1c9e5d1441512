/** Account states for tests that need no database: a map the test edits, as a source for `Accounts`. */
import type { AccountSource, AccountState } from "../lib/accounts.ts";

/** A source over `states` (edit it to change an account); `asked` counts its queries. */
export function memorySource(states: Map<number, AccountState>): AccountSource & { asked: number } {
  const source = {
    asked: 0,
    changed(known: ReadonlyMap<number, number>) {
      source.asked++;
      const result = new Map<number, AccountState | null>();
      for (const [id, epoch] of known) {
        const state = states.get(id);
        if (!state) result.set(id, null);
        else if (state.epoch !== epoch) result.set(id, { ...state });
      }
      return Promise.resolve(result);
    },
  };
  return source;
}
