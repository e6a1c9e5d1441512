/**
 * What every benchmark starts from: a throwaway PostgreSQL cluster (normal
 * durability), migrated and seeded with N students, and the real server
 * (`main.ts`) on it, with an admin token for the API and the process's PID
 * (so CPU and memory can be read from /proc).
 */
import type { Cluster } from "../../tests/support/cluster.ts";
import { seededCluster } from "../../tests/support/seeded_cluster.ts";
import { startServer } from "../../tests/support/server_process.ts";
import { randomSecret } from "../../lib/secret_strength.ts";
import { issueToken } from "../../lib/tokens.ts";

/** The JWT secret the benchmark servers sign with (random per run: a fixed phrase is refused). */
export const BENCH_SECRET = randomSecret();

/** A seeded cluster and a running server. */
export interface Bench {
  cluster: Cluster;
  base: string;
  adminId: number;
  /** `Bearer …` for the seeded admin. */
  authorization: string;
  server: Deno.ChildProcess;
  /** Stops the server and removes the cluster. */
  stop(): Promise<void>;
}

/** Runs a command to its end; throws with its output when it fails. */
export async function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} failed:\n${text}`);
  return text;
}

/** Percentile `p` (0..1) of `xs`. */
export function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(sorted.length * p) - 1)];
}

/** Starts the cluster, seeds `students`, starts the server with `env` on top of the bench defaults. */
export async function benchServer(
  options: {
    students: number;
    desyncRate?: number;
    env?: Record<string, string>;
    clusterSettings?: Record<string, string>;
  },
): Promise<Bench> {
  const seeded = await seededCluster({
    students: options.students,
    desyncRate: options.desyncRate ?? 0.001,
    settings: options.clusterSettings,
  });
  if (!seeded) throw new Error("PostgreSQL binaries not found (Debian: apt-get install postgresql)");
  const dir = await Deno.makeTempDir({ prefix: "levelguard-bench-" });
  try {
    const server = await startServer({
      DATABASE_URL: seeded.url,
      JWT_SECRET: BENCH_SECRET,
      RATE_LIMIT_PER_MINUTE: "0",
      LOG_REQUESTS: "0",
      SCAN_ENABLED: "1",
      SCAN_CRON: "0 0 1 1 *",
      DATA_DIR: dir,
      LOG_DIR: dir,
      ...options.env,
    });
    const { token } = await issueToken(new TextEncoder().encode(BENCH_SECRET), {
      userId: seeded.adminId,
      role: "ADMIN",
      epoch: 0, // a freshly seeded account: never changed
    }, 3600);
    return {
      cluster: seeded.cluster,
      base: server.url,
      adminId: seeded.adminId,
      authorization: `Bearer ${token}`,
      server: server.child,
      async stop() {
        await server.stop();
        await seeded.stop();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      },
    };
  } catch (err) {
    await seeded.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
}

/** CPU seconds (user + system) a process has used, from /proc (Linux). */
export function cpuSeconds(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident memory of a process in MB, and its peak (VmHWM), from /proc (Linux). */
export function memoryMb(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
}

/** wrk's summary (our Lua prints it as JSON after `RESULT `). */
export interface WrkResult {
  requests: number;
  duration_us: number;
  p50_us: number;
  p95_us: number;
  p99_us: number;
  errors: number;
}

/** Runs wrk with a Lua script and returns its summary. */
export async function wrk(
  script: string,
  base: string,
  options: { connections: number; seconds: number; env?: Record<string, string> },
): Promise<WrkResult & { rps: number }> {
  const out = await run("wrk", [
    "-t2",
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    "-s",
    script,
    base,
  ], options.env);
  const result: WrkResult = JSON.parse(out.split("RESULT ")[1].split("\n")[0]);
  return { ...result, rps: result.requests / (result.duration_us / 1e6) };
}
