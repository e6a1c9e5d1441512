/**
 * A DATABASE_URL that reaches something other than PostgreSQL (a wrong port: an HTTP server, a
 * listener that hangs up or never answers) stops every entry point in one line within the connect
 * timeout. postgres.js reconnected forever to a peer that hung up, and `deno task start`, `migrate`,
 * `scan` and `staging:export` hung with no output.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { closedPort } from "./_fixture.ts";
import { LOAD_SECRET } from "./_load.ts";
import { notPostgresPeers } from "./_peers.ts";
import { runScript } from "./_process.ts";

const PASSWORD = "Hunter2-not-for-output";

const ENTRY_POINTS = [
  { script: "main.ts", name: "levelguard", says: "database unreachable" },
  { script: "tasks/migrate.ts", name: "migrate", says: "database unreachable" },
  { script: "tasks/scan.ts", name: "scan", says: "database unreachable" },
  // DATABASE_URL is its source; the target is not reached first (both are opened at once).
  { script: "tasks/staging_export.ts", name: "staging:export", says: "the --from database is unreachable" },
];

Deno.test("start, migrate, scan and staging:export stop in one line, exit 1, when DATABASE_URL answers as something else than PostgreSQL", async () => {
  const { peers, close } = notPostgresPeers();
  try {
    for (const peer of peers) {
      const env = {
        DATABASE_URL: `postgres://lg:${PASSWORD}@127.0.0.1:${peer.port}/levelguard`,
        DB_CONNECT_TIMEOUT_S: "1",
        JWT_SECRET: LOAD_SECRET,
        PORT: "0",
        HOST: "127.0.0.1",
        SCAN_ENABLED: "0",
        STAGING_TO_URL: `postgres://lg@127.0.0.1:${closedPort()}/staging`,
        STAGING_PASSWORD: "x".repeat(12),
      };
      // A hang is killed after 60 s, and fails below (the connect timeout is 1 s).
      const runs = await Promise.all(ENTRY_POINTS.map(async ({ script, name, says }) => ({
        name,
        says,
        out: await runScript(script, [], env, 60_000).catch((err) => ({
          code: -1,
          stdout: "",
          stderr: String(err),
        })),
      })));
      for (const { name, says, out } of runs) {
        const what = `${name} on ${peer.name}`;
        assertEquals(out.code, 1, `${what}: ${out.stderr}`);
        const lines = out.stderr.trimEnd().split("\n");
        assertEquals(lines.length, 1, `${what}: ${out.stderr}`);
        assertMatch(
          lines[0],
          new RegExp(
            `^${name}: ${says}: 127\\.0\\.0\\.1:${peer.port} (did not answer as PostgreSQL within 1 s|` +
              `closed the connection without answering as PostgreSQL \\([A-Z_]+\\))$`,
          ),
          what,
        );
        assert(!(out.stdout + out.stderr).includes(PASSWORD), `${what}: no password in the output`);
      }
    }
  } finally {
    await close();
  }
});
