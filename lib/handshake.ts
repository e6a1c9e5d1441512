/**
 * A client's first answer from the database, within the connect timeout. postgres.js bounds the
 * wait for a peer that accepts and stays silent, but a peer that is not PostgreSQL and hangs up (an
 * HTTP port answering 400, a listener that closes at once) makes it reconnect at once, forever —
 * 300+ connections a second, measured — and every start-up, task and probe hung with no output.
 */
import type postgres from "postgres";
import { databaseTarget, hostCount } from "./postgres_url.ts";

/** A peer that gave no PostgreSQL answer (lib/retry.ts classifies its code as unreachable). */
export class NoPostgresAnswer extends Error {
  override name = "NoPostgresAnswer";
  constructor(message: string, readonly code: "CONNECT_TIMEOUT" | "CONNECTION_CLOSED" = "CONNECT_TIMEOUT") {
    super(message);
  }
}

/** The one phrase for a database that did not answer as PostgreSQL: where, and within how long. */
function noAnswer(url: string, timeoutS: number): string {
  return `${databaseTarget(url)} did not answer as PostgreSQL within ${timeoutS} s`;
}

// The peer hung up before the first answer: a listener that closes at once, or a server that is not
// PostgreSQL answering our start-up packet with its own error.
const HUNG_UP = new Set(["EPIPE", "ECONNRESET", "CONNECTION_CLOSED"]);

/**
 * Runs `SELECT 1` on `sql` (a client of `url`) within `timeoutS` per host the URL names (postgres.js
 * tries them in turn); throws NoPostgresAnswer when no answer came in time (or postgres.js's own
 * timeout said so) or the peer hung up first, and the client's error otherwise (refused, bad
 * credentials, no such database). On a failure the caller ends the client without waiting
 * (`end({ timeout: 0 })`): one still reconnecting never finishes a graceful end.
 */
export async function firstAnswer(sql: postgres.Sql, url: string, timeoutS: number): Promise<void> {
  const seconds = timeoutS * hostCount(url);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NoPostgresAnswer(noAnswer(url, seconds))), seconds * 1000);
  });
  try {
    await Promise.race([sql`SELECT 1`, late]);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "CONNECT_TIMEOUT") throw new NoPostgresAnswer(noAnswer(url, seconds));
    if (code && HUNG_UP.has(code)) {
      throw new NoPostgresAnswer(
        `${databaseTarget(url)} closed the connection without answering as PostgreSQL (${code})`,
        "CONNECTION_CLOSED",
      );
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
