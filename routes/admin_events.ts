/**
 * GET /admin/health/events: server-sent events for open dashboards,
 * `check-started` and `check-finished`, from any instance (lib/integrity/events.ts).
 * A few streams per session (the oldest closes when a tab too many opens),
 * a keep-alive comment every 15 s (streamSSE sends none), all of a session's
 * streams closed when it signs out.
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { CheckEvent, CheckEvents } from "../lib/integrity/events.ts";

/** Streams one session may hold (tabs). */
export const STREAMS_PER_SESSION = 4;
/** Streams one process holds at most. */
export const MAX_STREAMS = 200;
const KEEP_ALIVE_MS = 15_000;

/** The stream endpoint over `events`, and a way to close a session's streams. */
export function liveEvents(events: CheckEvents) {
  const bySession = new Map<string, ((sessionEnded: boolean) => void)[]>();
  let open = 0;

  function stream(c: Context, sessionKey: string) {
    if (open >= MAX_STREAMS) return c.text("Too many live streams; the page refreshes on its timer.", 503);
    const mine = bySession.get(sessionKey) ?? [];
    if (mine.length >= STREAMS_PER_SESSION) mine.shift()?.(false);
    c.header("Cache-Control", "no-store");
    return streamSSE(c, async (sse) => {
      open++;
      let closed = false;
      let ended = false;
      let wake: () => void = () => {};
      const close = (sessionEnded = false) => {
        closed = true;
        ended = sessionEnded;
        wake();
      };
      mine.push(close);
      bySession.set(sessionKey, mine);
      const queue: CheckEvent[] = [];
      const unsubscribe = events.subscribe((event) => {
        queue.push(event);
        wake();
      });
      sse.onAbort(() => close());
      try {
        await sse.writeSSE({ event: "hello", data: JSON.stringify({ live: events.listening }) });
        while (!closed) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, KEEP_ALIVE_MS);
          });
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
        open--;
        const list = bySession.get(sessionKey) ?? [];
        const at = list.indexOf(close);
        if (at >= 0) list.splice(at, 1);
        if (list.length === 0) bySession.delete(sessionKey);
        await sse.close().catch(() => {});
      }
    });
  }

  function closeSession(sessionKey: string) {
    for (const close of bySession.get(sessionKey) ?? []) close(true);
    bySession.delete(sessionKey);
  }

  return {
    stream,
    closeSession,
    get open() {
      return open;
    },
  };
}
