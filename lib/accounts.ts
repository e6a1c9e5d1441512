/**
 * The accounts that tokens speak for, as they are now. A token is worth what
 * its account is worth at the moment of the request: active, the same role,
 * and the same epoch (migration 0012 moves `users.auth_epoch` on whenever
 * `is_active`, `role` or `hashed_password` changes, whoever writes the row).
 *
 * Each process keeps the state of the accounts it has seen in memory, so a
 * request costs a Map lookup, and a query only the first time an account is
 * seen. It is kept current by LISTEN on `levelguard_accounts` (the trigger
 * notifies on commit, from any writer), and refreshed whole whenever LISTEN
 * (re)connects, since notifications sent while it was down are lost. Where
 * LISTEN cannot run (through a pooler without DATABASE_DIRECT_URL, the
 * embedded database) it compares the epochs it holds with the database twice
 * a second instead. Polling "rows changed since the last poll" by a sequence
 * or a timestamp would miss a change whose transaction commits after the
 * poller has read past its value (both are taken before commit), so the
 * poller asks for the held accounts by primary key: a handful of index
 * lookups, never a miss.
 */
import { z } from "zod";
import type { Sql } from "./db.ts";
import { errorFields, log } from "./log.ts";
import { type Role, ROLES } from "./model.ts";

/** The channel migration 0012 notifies. */
export const ACCOUNT_CHANNEL = "levelguard_accounts";

/** Between two comparisons with the database where LISTEN cannot run (a change ends tokens within a second). */
export const POLL_MS = 500;

// Accounts held at most (~100 bytes each); the oldest seen goes first and is loaded again when next seen.
const CAPACITY = 10_000;

// users.id is an integer: a larger id names nobody (and must not reach the cast below).
const MAX_USER_ID = 2_147_483_647;

/** What a token is checked against. */
export interface AccountState {
  /** `users.auth_epoch`: moves on at every activation, role or password change. */
  epoch: number;
  active: boolean;
  role: Role;
}

/** An account changed (or was deleted: `state` null). */
export interface AccountChange {
  userId: number;
  state: AccountState | null;
}

/** Where account states come from (the database; tests give a map). */
export interface AccountSource {
  /**
   * The accounts among `known` (id → the epoch held; -1 for none) whose epoch
   * in the database is another: their state now, or null when there is no such user.
   */
  changed(known: ReadonlyMap<number, number>): Promise<Map<number, AccountState | null>>;
}

/** What the route guard reads: the held state at once, or a load. */
export interface AccountLookup {
  /** The held state of an account, without waiting; undefined when not held. */
  get(userId: number): AccountState | undefined;
  /** Loads an account's state (null: no such user) and holds it. */
  load(userId: number): Promise<AccountState | null>;
}

/** True when a token of `claims` still speaks for `account`: active, same role, same epoch. */
export function speaksFor(account: AccountState, claims: { role: Role; epoch: number }): boolean {
  return account.active && account.role === claims.role && account.epoch === claims.epoch;
}

/** Account states from the `users` table. */
export function sqlAccountSource(sql: Sql): AccountSource {
  return {
    async changed(known) {
      const result = new Map<number, AccountState | null>();
      const ids: number[] = [];
      const epochs: number[] = [];
      for (const [id, epoch] of known) {
        if (Number.isSafeInteger(id) && id > 0 && id <= MAX_USER_ID) {
          ids.push(id);
          epochs.push(epoch);
        } else if (epoch !== -1) result.set(id, null);
      }
      if (ids.length === 0) return result;
      // Arrays as text: the same statement for any number of ids, also through a pooler.
      const rows = await sql<
        { id: number; epoch: number | null; active: boolean | null; role: Role | null }[]
      >`
        SELECT k.id, u.auth_epoch AS epoch, u.is_active AS active, u.role
        FROM unnest(${`{${ids.join(",")}}`}::int[], ${`{${epochs.join(",")}}`}::int[]) AS k(id, epoch)
        LEFT JOIN users u ON u.id = k.id
        WHERE u.auth_epoch IS DISTINCT FROM k.epoch`;
      for (const r of rows) {
        result.set(r.id, r.epoch === null ? null : { epoch: r.epoch, active: r.active!, role: r.role! });
      }
      return result;
    },
  };
}

const notice = z.union([
  z.object({ id: z.number().int(), deleted: z.literal(true) }),
  z.object({ id: z.number().int(), epoch: z.number().int(), active: z.boolean(), role: z.enum(ROLES) }),
]);

interface Watcher {
  epoch: number;
  fn: () => void;
}

/** Options of `Accounts`. */
export interface AccountsOptions {
  /** Accounts held at most (default 10,000). */
  capacity?: number;
  /** Between comparisons while polling (default POLL_MS). */
  pollMs?: number;
  /** Told of every failed refresh (a metric); the first of a series is also logged. */
  onError?: (err: unknown) => void;
}

/** The accounts this process has seen, kept current (see the module's comment). */
export class Accounts implements AccountLookup {
  readonly #states = new Map<number, AccountState>();
  readonly #loading = new Map<number, Promise<AccountState | null>>();
  /** Accounts a change was heard of while they were being loaded: the load may predate it. */
  readonly #stale = new Set<number>();
  readonly #watchers = new Map<number, Set<Watcher>>();
  readonly #subscribers = new Set<(change: AccountChange) => void>();
  readonly #capacity: number;
  readonly #pollMs: number;
  #mode: "idle" | "listen" | "poll" = "idle";
  #timer: ReturnType<typeof setTimeout> | undefined;
  #unlisten: (() => Promise<unknown>) | undefined;
  #failing = false;

  constructor(private readonly source: AccountSource, private readonly options: AccountsOptions = {}) {
    this.#capacity = options.capacity ?? CAPACITY;
    this.#pollMs = options.pollMs ?? POLL_MS;
  }

  /** How changes reach this process: LISTEN, polling, or not at all (not started). */
  get mode(): "idle" | "listen" | "poll" {
    return this.#mode;
  }

  /** How many accounts are held. */
  get size(): number {
    return this.#states.size;
  }

  /** The held state of an account, without waiting; undefined when not held (the hot path). */
  get(userId: number): AccountState | undefined {
    return this.#states.get(userId);
  }

  /** Loads an account's state (null: no such user) and holds it; concurrent callers share one query. */
  load(userId: number): Promise<AccountState | null> {
    let pending = this.#loading.get(userId);
    if (!pending) {
      pending = this.#load(userId).finally(() => this.#loading.delete(userId));
      this.#loading.set(userId, pending);
    }
    return pending;
  }

  /** The held state, or a load. */
  current(userId: number): AccountState | null | Promise<AccountState | null> {
    return this.#states.get(userId) ?? this.load(userId);
  }

  /**
   * Calls `fn` once the account is no longer at `epoch` (changed, deactivated,
   * deleted; at once if it already is), until the returned function is called.
   * The account is held meanwhile, so polling compares it too.
   */
  watch(userId: number, epoch: number, fn: () => void): () => void {
    const watcher: Watcher = { epoch, fn };
    const set = this.#watchers.get(userId) ?? new Set();
    set.add(watcher);
    this.#watchers.set(userId, set);
    const unwatch = () => {
      set.delete(watcher);
      if (set.size === 0 && this.#watchers.get(userId) === set) this.#watchers.delete(userId);
    };
    Promise.resolve(this.current(userId)).then((state) => {
      if (set.has(watcher) && (!state || state.epoch !== epoch)) {
        unwatch();
        fn();
      }
    }, () => {/* the database is away: the caller's own checks still run */});
    return unwatch;
  }

  /** Calls `fn` for every account change this process hears of, until the returned function is called. */
  subscribe(fn: (change: AccountChange) => void): () => void {
    this.#subscribers.add(fn);
    return () => this.#subscribers.delete(fn);
  }

  /**
   * Starts hearing of changes: LISTEN on `listenOn` (a connection to the
   * server itself), or polling when there is none or LISTEN fails.
   */
  async start(listenOn: Sql | null): Promise<void> {
    if (this.#mode !== "idle") return;
    if (listenOn) {
      try {
        const { unlisten } = await listenOn.listen(
          ACCOUNT_CHANNEL,
          (payload) => this.#notified(payload),
          // Called on every (re)connection: what changed while LISTEN was down went unheard.
          () => void this.refresh().then(() => this.#recovered(), (err) => this.#failed(err)),
        );
        this.#unlisten = unlisten;
        this.#mode = "listen";
        return;
      } catch (err) {
        log("warn", "account changes cannot be heard through LISTEN; polling for them", errorFields(err));
      }
    }
    this.#mode = "poll";
    this.#schedule();
  }

  /** Stops hearing of changes (the held states stay as they are). */
  async stop(): Promise<void> {
    const mode = this.#mode;
    this.#mode = "idle";
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (mode === "listen") await this.#unlisten?.().catch(() => {});
    this.#unlisten = undefined;
  }

  /** Compares every held account with the source once and applies what changed. */
  async refresh(): Promise<void> {
    if (this.#states.size === 0) return;
    const known = new Map<number, number>();
    for (const [id, state] of this.#states) known.set(id, state.epoch);
    for (const [id, state] of await this.source.changed(known)) this.#heard(id, state);
  }

  #schedule() {
    if (this.#mode !== "poll") return;
    const timer = setTimeout(async () => {
      try {
        await this.refresh();
        this.#recovered();
      } catch (err) {
        // The pool was closed by its owner (shutting down): it never answers again.
        if ((err as { code?: string }).code === "CONNECTION_ENDED") return void this.stop();
        this.#failed(err);
      }
      this.#schedule();
    }, this.#pollMs);
    // A task or a test that is done does not wait for the next poll.
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  async #load(userId: number): Promise<AccountState | null> {
    for (;;) {
      this.#stale.delete(userId);
      const found = (await this.source.changed(new Map([[userId, -1]]))).get(userId) ?? null;
      if (this.#stale.has(userId)) continue;
      const held = this.#states.get(userId);
      if (held && (!found || held.epoch >= found.epoch)) return held;
      if (found) this.#hold(userId, found);
      return found;
    }
  }

  #hold(userId: number, state: AccountState) {
    this.#states.set(userId, state);
    if (this.#states.size <= this.#capacity) return;
    // The oldest seen that nobody watches (a watched account must stay compared).
    for (const id of this.#states.keys()) {
      if (!this.#watchers.has(id)) {
        this.#states.delete(id);
        return;
      }
    }
  }

  /** A change heard of (NOTIFY or a comparison). Epochs only move forward: older news is ignored. */
  #heard(userId: number, next: AccountState | null) {
    if (this.#loading.has(userId)) this.#stale.add(userId);
    const held = this.#states.get(userId);
    if (next && held && next.epoch <= held.epoch) return;
    if (!next) this.#states.delete(userId);
    else if (held) this.#states.set(userId, next);
    const change = { userId, state: next };
    for (const watcher of [...this.#watchers.get(userId) ?? []]) {
      if (next && next.epoch === watcher.epoch) continue;
      this.#watchers.get(userId)?.delete(watcher);
      watcher.fn();
    }
    if (this.#watchers.get(userId)?.size === 0) this.#watchers.delete(userId);
    for (const fn of this.#subscribers) {
      try {
        fn(change);
      } catch (err) {
        log("error", "an account change subscriber failed", errorFields(err));
      }
    }
  }

  #notified(payload: string) {
    let parsed;
    try {
      parsed = notice.safeParse(JSON.parse(payload));
    } catch {
      return;
    }
    if (!parsed.success) return;
    const n = parsed.data;
    this.#heard(n.id, "deleted" in n ? null : { epoch: n.epoch, active: n.active, role: n.role });
  }

  #failed(err: unknown) {
    this.options.onError?.(err);
    if (this.#failing) return;
    this.#failing = true;
    log("warn", "comparing the accounts held with the database failed; retrying", errorFields(err));
  }

  #recovered() {
    if (!this.#failing) return;
    this.#failing = false;
    log("info", "the accounts held are compared with the database again");
  }
}
