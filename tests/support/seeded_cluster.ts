/** A throwaway PostgreSQL cluster, migrated and seeded: where benchmarks and `deno task loadtest` run. */
import postgres from "postgres";
import { clientOptions } from "../../lib/db.ts";
import { migrate } from "../../lib/migrate.ts";
import { seed } from "../../lib/seed.ts";
import { type Cluster, findPgBin, startCluster } from "./cluster.ts";

/** The seeded accounts (the load scripts' defaults). */
export const SEEDED_ACCOUNTS = {
  adminEmail: "admin@staging.example.com",
  adminPassword: "staging_password",
  studentPassword: "staging_student_password",
} as const;

/** A cluster with `students` seeded; `adminId` is the seeded admin. */
export interface SeededCluster {
  cluster: Cluster;
  url: string;
  adminId: number;
  stop(): Promise<void>;
}

/** Starts, migrates and seeds a cluster; null when PostgreSQL's binaries are not installed. */
export async function seededCluster(
  options: { students: number; desyncRate?: number; settings?: Record<string, string> },
): Promise<SeededCluster | null> {
  const bin = await findPgBin();
  if (!bin) return null;
  const cluster = await startCluster(bin, options.settings);
  try {
    const sql = postgres(
      cluster.url,
      clientOptions({ DB_CONNECT_TIMEOUT_S: 10, DB_STATEMENT_TIMEOUT_MS: 0 }, 2),
    );
    try {
      await migrate(sql);
      const seeded = await seed(sql, {
        students: options.students,
        desyncRate: options.desyncRate ?? 0,
        ...SEEDED_ACCOUNTS,
      });
      // What autovacuum does on a live database (visibility map, statistics).
      await sql`VACUUM ANALYZE`;
      return { cluster, url: cluster.url, adminId: seeded.adminId, stop: () => cluster.stop() };
    } finally {
      await sql.end();
    }
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}
