/**
 * The password file of libpq (`~/.pgpass`, or the file PGPASSFILE names), which
 * postgres.js does not read: so that a connection string given on a command line
 * can leave its password out, as with psql. Lines are
 * `hostname:port:database:username:password`, `*` matches anything in the first
 * four fields, `\:` and `\\` escape, `#` starts a comment; the first matching
 * line wins. As libpq does, a file that others may read is ignored.
 */
import { join } from "node:path";

/** What a connection is for: the fields a line is matched on. */
export interface PgpassTarget {
  host: string;
  port: number;
  database: string;
  user: string;
}

/** The password `text` (a password file's content) gives for `target`, or null. */
export function matchPgpass(text: string, target: PgpassTarget): string | null {
  const wanted = [target.host, String(target.port), target.database, target.user];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const fields = splitLine(line);
    if (fields.length < 5) continue;
    if (wanted.every((value, i) => fields[i] === "*" || fields[i] === value)) return fields[4];
  }
  return null;
}

/** The password the user's password file gives for `target`; null without a file, a match or access. */
export async function pgpassPassword(target: PgpassTarget): Promise<string | null> {
  let path: string | undefined;
  try {
    path = Deno.env.get("PGPASSFILE") ??
      (Deno.env.get("HOME") ? join(Deno.env.get("HOME")!, ".pgpass") : undefined);
    if (!path) return null;
    const info = await Deno.stat(path);
    // libpq: "has group or world access; permissions should be u=rw (0600) or less".
    if (!info.isFile || (info.mode !== null && (info.mode & 0o077) !== 0)) return null;
    return matchPgpass(await Deno.readTextFile(path), target);
  } catch {
    return null;
  }
}

/** The target of a postgres:// URL (its first host), as a password file matches it. */
export function pgpassTarget(url: string): PgpassTarget {
  const first = url.replace(/^(postgres(?:ql)?:\/\/(?:[^@/?]*@)?)([^,/?]*)(?:,[^/?]*)?/, "$1$2");
  const u = new URL(first);
  // postgres.js's order for the user name.
  const user = decodeURIComponent(u.username) || Deno.env.get("PGUSERNAME") || Deno.env.get("PGUSER") ||
    Deno.env.get("USER") || "";
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, "$1") || "localhost",
    port: Number(u.port || 5432),
    database: decodeURIComponent(u.pathname.slice(1)) || user,
    user,
  };
}

function splitLine(line: string): string[] {
  const fields: string[] = [];
  let current = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "\\" && i + 1 < line.length) current += line[++i];
    else if (c === ":" && fields.length < 4) {
      fields.push(current);
      current = "";
    } else current += c;
  }
  fields.push(current);
  return fields;
}
