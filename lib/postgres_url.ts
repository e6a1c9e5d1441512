/**
 * PostgreSQL connection strings, checked before any client sees them. A URL
 * that the URL parser or postgres.js refuses used to reach the user as
 * `Invalid URL: 'postgres://admin:TopSecret123@…'` (the parser quotes its
 * input) or as a stack trace: here every problem is a phrase that names what
 * is wrong and never repeats the value, and the caller adds the variable's name.
 */
import postgres from "postgres";

const TARGET_SESSION_ATTRS = ["read-write", "read-only", "primary", "standby", "prefer-standby"];

/** What is wrong with `raw` as a postgres:// URL (a phrase that never quotes it), or null when usable. */
export function postgresUrlProblem(raw: string): string | null {
  if (!/^postgres(ql)?:\/\//.test(raw)) return "must start with postgres:// or postgresql://";
  if ([...raw].some((c) => c <= " " || c === "\x7f" || /\s/.test(c))) {
    return "contains a space or a control character (percent-encode it)";
  }
  const { userinfo, hosts } = authority(raw);
  if (userinfo.split(":").some((part) => !decodes(part))) {
    return "has a malformed %-escape in its user name or password (a literal % is written %25)";
  }
  if (!decodes(hosts)) return "has a malformed %-escape in its host";
  if (hosts === "") return "names no host";
  for (const host of hosts.split(",")) {
    // `host`, `host:port`, `[ipv6]` or `[ipv6]:port`; several hosts are comma-separated.
    const m = /^(\[[^\[\]]*\]|[^\[\]:]+)(?::([^:]*))?$/.exec(host);
    if (!m) return "has a malformed host (an IPv6 address is written in brackets: [::1]:5432)";
    const port = m[2];
    if (port && (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535)) {
      return "has a port that is not a number from 1 to 65535";
    }
  }
  let url: URL;
  try {
    // As postgres.js reads it: the first of several hosts stands for all of them.
    url = new URL(raw.replace(hosts, hosts.split(",")[0]));
  } catch {
    return "is not a valid URL";
  }
  const attrs = url.searchParams.get("target_session_attrs");
  if (attrs !== null && !TARGET_SESSION_ATTRS.includes(attrs)) {
    return `has a target_session_attrs that is not one of ${TARGET_SESSION_ATTRS.join(", ")}`;
  }
  try {
    // The client's own parsing, last: what it refuses beyond the above. It opens nothing until a query.
    postgres(raw, { max: 1 });
  } catch {
    return "is refused by the PostgreSQL client (postgres.js)";
  }
  return null;
}

/** True when the URL carries a password (it then must not come from a command line). */
export function hasPassword(raw: string): boolean {
  const { userinfo } = authority(raw);
  return userinfo.includes(":") && userinfo.slice(userinfo.indexOf(":") + 1) !== "";
}

/** `host:port` (all hosts, comma-separated) of a URL that passed `postgresUrlProblem`: for messages. */
export function databaseTarget(raw: string): string {
  const { hosts } = authority(raw);
  return decodeURIComponent(hosts).split(",").map((h) => /:\d+$/.test(h) ? h : `${h.replace(/:$/, "")}:5432`)
    .join(",");
}

/** How many hosts the URL names (postgres.js tries them one after another). */
export function hostCount(raw: string): number {
  return authority(raw).hosts.split(",").length;
}

/** The user information and the host list, split as postgres.js splits them. */
function authority(raw: string): { userinfo: string; hosts: string } {
  const rest = raw.slice(raw.indexOf("://") + 3);
  const part = rest.split(/[?/]/)[0];
  const at = part.lastIndexOf("@");
  return at < 0 ? { userinfo: "", hosts: part } : { userinfo: part.slice(0, at), hosts: part.slice(at + 1) };
}

function decodes(text: string): boolean {
  try {
    decodeURIComponent(text);
    return true;
  } catch {
    return false;
  }
}

/** Replaces the user information of every postgres:// URL in `text` (error messages, stacks) with `***`. */
export function redactUrls(text: string): string {
  return text.replace(/(postgres(?:ql)?:\/\/)[^\s'"`<>]*@/g, "$1***@");
}
