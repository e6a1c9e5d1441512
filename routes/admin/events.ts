/**
 * GET /admin/health/events: server-sent events for open dashboards,
 * `check-started` and `check-finished`, from any instance (lib/integrity/events.ts).
 * A few streams per admin across all their sessions (the oldest closes when a
 * tab too many opens), a keep-alive comment every 15 s (streamSSE sends none).
 * A stream ends when its session does: at once when the sign-out lands on this
 * instance, and at the next keep-alive when it landed on another one (or the
 * session expired), since each keep-alive asks the database whether the
 * session still holds. A change of the account (deactivated, demoted, a new
 * password: its sessions are deleted with it) ends its streams at once, on
 * every instance (lib/accounts.ts).
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { Unavailable } from "../../lib/errors.ts";
import type { CheckEvent, CheckEvents } from "../../lib/integrity/events.ts";

/** Streams one admin may hold (tabs, over all their sessions). */
export const STREAMS_PER_ADMIN = 4;
/** Streams one process holds at most. */
export const MAX_STREAMS = 200;
const KEEP_ALIVE_MS = 15_000;

/** Whose stream it is. */
export interface StreamOwner {
  userId: number;
  /** The session's token hash. */
  sessionKey: string;
  /** The account's epoch when the session was looked up. */
  epoch: number;
}

/** What the streams need. */
export interface LiveOptions {
  /** Whether a session (by token hash) is still signed in; asked at every keep-alive. */
  sessionLive: (sessionKey: string) => Promise<boolean>;
  /** Calls `fn` once the account is no longer at `epoch`; returns how to stop (lib/accounts.ts `watch`). */
  accountChanged: (userId: number, epoch: number, fn: () => void) => () => void;
  /** Between keep-alives (tests shorten it). */
  keepAliveMs?: number;
}

interface OpenStream {
  sessionKey: string;
  close: (sessionEnded: boolean) => void;
}

/** The stream endpoint over `events`, and a way to close a session's streams. */
export function liveEvents(events: CheckEvents, options: LiveOptions) {
  const keepAliveMs = options.keepAliveMs ?? KEEP_ALIVE_MS;
  const byUser = new Map<number, OpenStream[]>();
  let open = 0;

  /** Still signed in? A database that does not answer is no reason to drop the page. */
  async function stillSignedIn(sessionKey: string): Promise<boolean> {
    try {
      return await options.sessionLive(sessionKey);
    } catch {
      return true;
    }
  }

  function stream(c: Context, owner: StreamOwner) {
    if (open >= MAX_STREAMS) throw new Unavailable("Too many live streams; the page refreshes on its timer");
    const mine = byUser.get(owner.userId) ?? [];
    if (mine.length >= STREAMS_PER_ADMIN) mine.shift()?.close(false);
    return streamSSE(c, async (sse) => {
      open++;
      let closed = false;
      let ended = false;
      let wake: () => void = () => {};
      const entry: OpenStream = {
        sessionKey: owner.sessionKey,
        close: (sessionEnded) => {
          closed = true;
          ended = sessionEnded;
          wake();
        },
      };
      mine.push(entry);
      byUser.set(owner.userId, mine);
      const queue: CheckEvent[] = [];
      const unsubscribe = events.subscribe((event) => {
        queue.push(event);
        wake();
      });
      sse.onAbort(() => entry.close(false));
      const unwatch = options.accountChanged(owner.userId, owner.epoch, () => entry.close(true));
      try {
        await sse.writeSSE({ event: "hello", data: JSON.stringify({ live: events.listening }) });
        while (!closed) {
          if (queue.length === 0) {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, keepAliveMs);
              wake = () => {
                clearTimeout(timer);
                resolve();
              };
            });
            // Woken by the timer: a keep-alive is due, if the session still holds.
            if (!closed && queue.length === 0 && !(await stillSignedIn(owner.sessionKey))) {
              entry.close(true);
            }
          }
          if (closed) {
            // The page's sse-close: the browser closes the stream instead of reconnecting.
            if (ended) await sse.writeSSE({ event: "session-ended", data: "{}" });
            break;
          }
          if (queue.length === 0) {
            await sse.write(": keep-alive\n\n");
            continue;
          }
          for (const event of queue.splice(0)) {
            await sse.writeSSE({
              event: event.outcome === "running" ? "check-started" : "check-finished",
              data: JSON.stringify(event),
              id: `${event.id}:${event.outcome}`,
            });
          }
        }
      } catch {
        // The client went away mid-write; nothing to tell anyone.
      } finally {
        unsubscribe();
        unwatch();
        open--;
        const list = byUser.get(owner.userId) ?? [];
        const at = list.indexOf(entry);
        if (at >= 0) list.splice(at, 1);
        if (list.length === 0) byUser.delete(owner.userId);
        await sse.close().catch(() => {});
      }
    });
  }

  /** Ends the streams of one session (its sign-out on this instance). */
  function closeSession(owner: Omit<StreamOwner, "epoch">) {
    for (const entry of [...(byUser.get(owner.userId) ?? [])]) {
      if (entry.sessionKey === owner.sessionKey) entry.close(true);
    }
  }

  return {
    stream,
    closeSession,
    get open() {
      return open;
    },
  };
}
