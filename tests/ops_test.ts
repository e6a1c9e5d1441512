import { assertEquals, assertMatch } from "./_assert.ts";
import postgres from "postgres";
import { readMigrations } from "../lib/migrate.ts";
import { createTestApp } from "./_app.ts";
import { createTestDatabase } from "./_db.ts";

Deno.test("/healthz answers without touching the database, with a request id", async () => {
  const db = await createTestDatabase({ max: 1 });
  try {
    const { app } = await createTestApp(db);
    const res = await app.request("/healthz");
    assertEquals(res.status, 200);
    assertEquals(await res.json(), { status: "ok" });
    assertMatch(res.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  } finally {
    await db.close();
  }
});

Deno.test("/readyz is 200 when the database is migrated", async () => {
  const db = await createTestDatabase({ max: 1 });
  try {
    const { app } = await createTestApp(db);
    const res = await app.request("/readyz");
    assertEquals(res.status, 200);
    assertEquals(await res.json(), { status: "ready" });
  } finally {
    await db.close();
  }
});

Deno.test("/readyz is 503 naming the pending migration", async () => {
  const db = await createTestDatabase({ max: 1 });
  try {
    const { app, deps } = await createTestApp(db);
    deps.migrations = [...await readMigrations(), { name: "9999_future.sql", sql: "", checksum: "x" }];
    const res = await app.request("/readyz");
    assertEquals(res.status, 503);
    assertEquals(await res.json(), { status: "not_ready", reason: "pending migrations: 9999_future.sql" });
  } finally {
    await db.close();
  }
});

Deno.test("/readyz is 503 with a reason when the database is unreachable", async () => {
  const db = await createTestDatabase({ max: 1 });
  try {
    const { app, deps } = await createTestApp(db);
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    deps.sql = postgres(`postgres://nobody@127.0.0.1:${port}/none`, { max: 1, connect_timeout: 1 });
    const res = await app.request("/readyz");
    assertEquals(res.status, 503);
    const body = await res.json();
    assertEquals(body.status, "not_ready");
    assertMatch(body.reason, /^database (unreachable|did not answer)/);
    await deps.sql.end();
  } finally {
    await db.close();
  }
});

Deno.test("unknown routes get a problem+json 404", async () => {
  const db = await createTestDatabase({ max: 1 });
  try {
    const { app } = await createTestApp(db);
    const res = await app.request("/api/v1/nothing-here");
    assertEquals(res.status, 404);
    assertEquals(res.headers.get("content-type"), "application/problem+json");
    const body = await res.json();
    assertEquals([body.status, body.title], [404, "Not found"]);
  } finally {
    await db.close();
  }
});
