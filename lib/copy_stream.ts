/**
 * Streams one query's rows from one database into a COPY on another (or the
 * same), with backpressure, in batches: the rows pass through this process a
 * chunk at a time, whatever their number. Used by the staging copy and by the
 * integrity scan reading on a replica.
 */
import { Buffer } from "node:buffer";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Queryable } from "./db.ts";

/** Bytes per CopyData message to the target (the source sends one message per row). */
const BATCH_BYTES = 64 * 1024;

/**
 * Regroups the source's rows into batches of about BATCH_BYTES for the target,
 * and counts them (text COPY: one newline per row; newlines in values are escaped).
 * One write per row cost 2-3x the time: 100,000 students' rows are ~600,000 messages.
 */
function batcher(onRows: (rows: number) => void): Transform {
  let rows = 0;
  let pending: Uint8Array[] = [];
  let size = 0;
  const take = () => {
    const batch = Buffer.concat(pending, size);
    pending = [];
    size = 0;
    onRows(rows);
    return batch;
  };
  return new Transform({
    transform(chunk: Uint8Array, _encoding, callback) {
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) rows++;
      pending.push(chunk);
      size += chunk.length;
      callback(null, size >= BATCH_BYTES ? take() : undefined);
    },
    flush(callback) {
      callback(null, size > 0 ? take() : undefined);
    },
  });
}

/**
 * Streams `select` (run on `src`) into `COPY into FROM STDIN` on `dst`;
 * resolves with the rows streamed once the target has taken them all.
 */
export async function copyStream(
  src: Queryable,
  dst: Queryable,
  select: string,
  into: string,
  onRows: (rows: number) => void,
): Promise<number> {
  let rows = 0;
  const readable = await src.unsafe(`COPY (${select}) TO STDOUT`).readable();
  const copyIn = dst.unsafe(`COPY ${into} FROM STDIN`);
  const writable = await copyIn.writable();
  // postgres.js 3.4 loses an error the target reports after CopyDone (a row of
  // the last batch refused): the stream's final callback never fires, and the
  // pipeline would wait forever. The query itself is still rejected with the
  // error: hand it to the stream. (A CopyFail outside COPY is ignored by the server.)
  const query = copyIn as unknown as { reject(err: unknown): void };
  const reject = query.reject;
  query.reject = (err) => {
    writable.destroy(err instanceof Error ? err : new Error(String(err)));
    reject(err);
  };
  await pipeline(readable, batcher((n) => onRows(rows = n)), writable);
  // postgres.js 3.4 pauses the socket when a CopyData fills the stream's buffer;
  // when CopyDone arrived in the same chunk nothing resumes it, and the next
  // query on the connection hangs (porsager/postgres#499, fix pending in #1016;
  // reproduced here with 2M rows). The stream's own read() resumes the socket.
  (readable as unknown as { _read(size: number): void })._read(0);
  return rows;
}
