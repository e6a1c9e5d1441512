/** A small load generator for the fault tests: workers posting XP awards to a running server. */
import { randomSecret } from "../lib/secret_strength.ts";
import { issueToken } from "../lib/tokens.ts";

/** One request's outcome. */
export interface Sent {
  startedAt: number;
  ms: number;
  /** HTTP status, or 0 when no complete response came (connection refused or reset, body cut). */
  status: number;
  eventId?: number;
  key?: string;
}

/** The JWT_SECRET the fault tests give their servers: a new random one per run (a fixed phrase is refused). */
export const LOAD_SECRET = randomSecret();

/** A bearer header for `userId` (an admin, at `epoch`: 0 until it changes) signed with LOAD_SECRET. */
export async function loadToken(userId: number, epoch = 0): Promise<string> {
  const { token } = await issueToken(
    new TextEncoder().encode(LOAD_SECRET),
    { userId, role: "ADMIN", epoch },
    600,
  );
  return `Bearer ${token}`;
}

/**
 * Runs `workers` loops posting awards (students 1..students, xp 1..50; every
 * other request with an Idempotency-Key) until `stop` resolves.
 */
export async function awardLoad(options: {
  url: string;
  authorization: string;
  workers: number;
  students: number;
  stop: Promise<unknown>;
  /** Filled as answers come (the resolved list is the same array). */
  sent?: Sent[];
}): Promise<Sent[]> {
  const sent: Sent[] = options.sent ?? [];
  let stopped = false;
  options.stop.then(() => stopped = true);
  const specs = ["PLAYER", "COACH", "INTERNSHIP"];
  let n = 0;
  const worker = async (w: number) => {
    while (!stopped) {
      const i = n++;
      const key = i % 2 === 0 ? `load-${w}-${i}` : undefined;
      const startedAt = performance.now();
      const headers: Record<string, string> = {
        Authorization: options.authorization,
        "Content-Type": "application/json",
      };
      if (key) headers["Idempotency-Key"] = key;
      const body = JSON.stringify({
        student_id: 1 + (i * 7) % options.students,
        specialization_id: specs[i % 3],
        xp_change: 1 + (i % 50),
      });
      try {
        const res = await fetch(`${options.url}/api/v1/specializations/progress/update`, {
          method: "POST",
          headers,
          body,
        });
        // A body cut off (the server was killed after the headers) is no answer at all.
        const json = await res.json().catch(() => null);
        sent.push({
          startedAt,
          ms: performance.now() - startedAt,
          status: json === null ? 0 : res.status,
          eventId: json?.event_id,
          key,
        });
      } catch {
        sent.push({ startedAt, ms: performance.now() - startedAt, status: 0, key });
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  };
  await Promise.all(Array.from({ length: options.workers }, (_, w) => worker(w)));
  return sent;
}
