/**
 * Prometheus metrics (prom-client): HTTP, checks, scheduler, coupling,
 * database, logins, notifications, process, build, and the plan's business
 * counters. Health figures (consistency rate, violations, age of the last
 * successful check) are read at scrape time from the shared state (the
 * database, through the status cache), so every instance reports the same
 * values, not only the one that ran the check.
 *
 * prom-client's default collectors run under Deno (CPU from the process, heap
 * figures from V8) except: the event-loop delay gauges (replaced, see
 * lib/event_loop_delay.ts), the GC duration histogram (left out), and those
 * read from /proc/self, which Deno allows only with --allow-all (resident
 * memory replaced by Deno.memoryUsage().rss; virtual memory, heap and file
 * descriptor counts left out rather than read as 0). The active
 * handles/requests/resources counts (no libuv handles: they read 0) and
 * nodejs_version_info (Deno's Node compatibility version) mean nothing here
 * and are left out too; levelguard_build_info has the versions.
 */
import client from "prom-client";
import type { Admission } from "./admission.ts";
import { inRollout } from "./canary/bucket.ts";
import { registerEventLoopDelay } from "./event_loop_delay.ts";
import type { HealthReport } from "./integrity/report.ts";
import type { RepairResult } from "./integrity/repair.ts";
import { type CheckRecord, type Trigger, TRIGGERS } from "./integrity/store.ts";
import { VIOLATION_KINDS } from "./model.ts";
import type { ReplicaState } from "./replica.ts";
import type { VerifiedPasswords } from "./verified_passwords.ts";

/** Database work that fails outside a request's answer, as `levelguard_background_errors_total` labels it. */
export const BACKGROUND_TASKS = ["rate_limit_store", "request_stats", "prune", "accounts"] as const;

/** The version of this build (bumped with releases). */
export const VERSION = "0.9.0";

// Read nothing under Deno: monitorEventLoopDelay never records a delay (replaced by
// lib/event_loop_delay.ts) and no "gc" performance entries are emitted (no replacement).
const REPLACED_UNDER_DENO = [
  "nodejs_eventloop_lag_seconds",
  "nodejs_eventloop_lag_min_seconds",
  "nodejs_eventloop_lag_max_seconds",
  "nodejs_eventloop_lag_mean_seconds",
  "nodejs_eventloop_lag_stddev_seconds",
  "nodejs_eventloop_lag_p50_seconds",
  "nodejs_eventloop_lag_p90_seconds",
  "nodejs_eventloop_lag_p99_seconds",
  "nodejs_gc_duration_seconds",
  // Read from /proc/self, which Deno lets only an --allow-all process read: under the systemd unit's
  // scoped permissions they would silently read 0. Resident memory comes from Deno instead.
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
  "process_max_fds",
];

const NOT_MEANINGFUL_UNDER_DENO = [
  "nodejs_active_handles",
  "nodejs_active_handles_total",
  "nodejs_active_requests",
  "nodejs_active_requests_total",
  "nodejs_active_resources",
  "nodejs_active_resources_total",
  "nodejs_version_info",
];

let processMetrics: client.Registry | undefined;

// A scrape waits this long for the status report (it is in memory but after a check event).
const STATUS_READ_MS = 1000;

// Admins change rarely and `users` has no index on role: the list is read again at most this often,
// in the background while the last one is served, so most scrapes run no query for it.
const ADMIN_IDS_MAX_AGE_MS = 60_000;

/** The value, or null when it fails or takes longer than `ms`. */
async function withinMs<T>(work: Promise<T>, ms: number): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([work, new Promise<null>((r) => timer = setTimeout(() => r(null), ms))]);
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

/** `read` at most once per scrape: the gauges of one scrape that need it share its answer. */
function oncePerScrape<T>(read: () => Promise<T>): () => Promise<T> {
  let current: Promise<T> | null = null;
  // The gauges of a scrape collect concurrently: forget the answer once they all have it.
  return () => current ??= read().finally(() => setTimeout(() => current = null, 0));
}

/**
 * `read`'s last value while younger than `maxAgeMs`; older, it is still served
 * once while a fresh read runs in the background. With no value (the first
 * scrape, or the last read failed) the caller waits up to `ms` for a read:
 * null when it fails or is late, so the gauge is absent, not stale.
 */
function cachedRead<T>(read: () => Promise<T>, maxAgeMs: number, ms: number): () => Promise<T | null> {
  let value: { v: T; at: number } | null = null;
  let reading: Promise<T | null> | null = null;
  const refresh = () =>
    reading ??= withinMs(read(), ms).then((v) => {
      value = v === null ? null : { v, at: performance.now() };
      return v;
    }).finally(() => reading = null);
  return async () => {
    if (!value) return await refresh();
    if (performance.now() - value.at >= maxAgeMs) refresh();
    return value.v;
  };
}

/**
 * A gauge that is absent from the scrape while its value is unknown (null),
 * rather than prom-client's 0: "no check yet" must not read as "0 % consistent".
 */
class OptionalGauge extends client.Gauge {
  #known = true;
  constructor(name: string, help: string, registers: client.Registry[], read: () => Promise<number | null>) {
    super({
      name,
      help,
      registers,
      collect: async () => {
        const value = await read();
        this.#known = value !== null;
        if (value !== null) this.set(value);
      },
    });
  }

  override async get() {
    const metric = await super.get();
    return this.#known ? metric : { ...metric, values: [] };
  }
}

/**
 * prom-client's default collectors (memory, CPU, heap, event-loop lag), once
 * per process and only from the first scrape on: they describe the process,
 * whatever number of apps it holds (tests build many).
 */
function processRegistry(): client.Registry {
  if (!processMetrics) {
    processMetrics = new client.Registry();
    client.collectDefaultMetrics({ register: processMetrics });
    for (const name of [...NOT_MEANINGFUL_UNDER_DENO, ...REPLACED_UNDER_DENO]) {
      processMetrics.removeSingleMetric(name);
    }
    registerEventLoopDelay(processMetrics);
    new client.Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes (Deno.memoryUsage, no /proc access needed)",
      registers: [processMetrics],
      collect() {
        this.set(Deno.memoryUsage().rss);
      },
    });
  }
  return processMetrics;
}

/** Where the scrape-time figures come from. */
export interface MetricSources {
  /** The status report (kept in memory between check events). */
  status: () => Promise<HealthReport>;
  passwords: Admission;
  /** Password checks kept and run (lib/verified_passwords.ts). */
  verifiedPasswords?: VerifiedPasswords;
  /** Requests using or waiting for the database now. */
  databasePending: () => number;
  poolSize: number;
  /** DATABASE_REPLICA_URL's state, when one is configured. */
  replica?: () => ReplicaState;
  /** This process's connections by state (server mode; the embedded database has one). */
  connections?: () => Promise<{ busy: number; idle: number } | null>;
  /** The dashboard's rollout percentage (the canary). */
  rolloutPercent?: () => Promise<number>;
  /** The ids of the active admins (one small query; cached here, see ADMIN_IDS_MAX_AGE_MS). */
  activeAdminIds?: () => Promise<number[]>;
  /** The build's commit, when known. */
  commit?: string;
}

/** The metrics of one process, in their own registry. */
export class Metrics {
  readonly registry = new client.Registry();
  #liveStreams: () => number = () => 0;

  readonly httpRequests = new client.Counter({
    name: "levelguard_http_requests_total",
    help: "HTTP requests answered, by method, route pattern and status class",
    labelNames: ["method", "route", "status_class"] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new client.Histogram({
    name: "levelguard_http_request_duration_seconds",
    help: "Time to answer an HTTP request, by method, route pattern and status class",
    labelNames: ["method", "route", "status_class"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly httpInFlight = new client.Gauge({
    name: "levelguard_http_requests_in_flight",
    help: "HTTP requests being answered",
    registers: [this.registry],
  });
  readonly rateLimited = new client.Counter({
    name: "levelguard_rate_limited_total",
    help: "Requests refused with 429 by the per-IP rate limit",
    registers: [this.registry],
  });
  readonly checks = new client.Counter({
    name: "levelguard_checks_total",
    help: "Integrity checks run by this instance, by trigger and outcome",
    labelNames: ["trigger", "outcome"] as const,
    registers: [this.registry],
  });
  readonly checkDuration = new client.Histogram({
    name: "levelguard_check_duration_seconds",
    help: "Duration of the full integrity checks this instance ran, by trigger",
    labelNames: ["trigger"] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly schedulerRuns = new client.Counter({
    name: "levelguard_scheduler_runs_total",
    help: "Scheduled integrity runs on this instance, by result (success, failure, skipped)",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly xpChanges = new client.Counter({
    name: "levelguard_xp_changes_total",
    help: "XP awards answered with 200, by result (applied, replayed)",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly xpBatchSize = new client.Histogram({
    name: "levelguard_xp_batch_size",
    help: "Awards per database call: 1 when sent alone, more when they queued for a busy pool (group commit)",
    buckets: [1, 2, 4, 8, 16, 32],
    registers: [this.registry],
  });
  readonly databaseErrors = new client.Counter({
    name: "levelguard_database_errors_total",
    help: "Requests refused because of the database, by kind (down, busy)",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly backgroundErrors = new client.Counter({
    name: "levelguard_background_errors_total",
    help:
      "Database work outside a request's answer that failed: the shared rate-limit counter (the request " +
      "passed unlimited), the canary's request figures (kept for the next try), the hourly pruning, the " +
      "comparison of the accounts held with the database (tokens checked against the last state known)",
    labelNames: ["task"] as const,
    registers: [this.registry],
  });
  readonly notifications = new client.Counter({
    name: "levelguard_notifications_total",
    help: "Status-change notifications to ALERT_WEBHOOK_URLS, by result (sent, failed)",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly dashboardViews = new client.Counter({
    name: "levelguard_dashboard_views_total",
    help: "Full dashboard pages served (business counter)",
    registers: [this.registry],
  });
  readonly manualChecks = new client.Counter({
    name: "levelguard_manual_checks_total",
    help: "Checks started by hand from the API or the dashboard (business counter)",
    registers: [this.registry],
  });
  readonly violationsRepaired = new client.Counter({
    name: "levelguard_violations_repaired_total",
    help: "Progress/license pairs repaired (business counter)",
    registers: [this.registry],
  });

  constructor(sources: MetricSources) {
    this.#zero();
    const registers = [this.registry];
    new client.Gauge({
      name: "levelguard_build_info",
      help: "Build and runtime versions (always 1)",
      labelNames: ["version", "commit", "deno", "v8"] as const,
      registers,
    }).set({
      version: VERSION,
      commit: sources.commit ?? "unknown",
      deno: Deno.version.deno,
      v8: Deno.version.v8,
    }, 1);

    // Read from the shared state at scrape time (one cached read for all of them). While the
    // database cannot answer, they are absent and the rest of the scrape still works.
    const latest = oncePerScrape(() => withinMs(sources.status(), STATUS_READ_MS));
    const fromReport = (fn: (r: HealthReport) => number | null) => async () => {
      const r = await latest();
      return r ? fn(r) : null;
    };
    new OptionalGauge(
      "levelguard_consistency_rate",
      "Consistency rate of the latest successful full check (0..1); absent before the first",
      registers,
      fromReport((r) => r.consistency_rate),
    );
    new OptionalGauge(
      "levelguard_pairs_checked",
      "Progress/license pairs the latest successful full check looked at; absent before the first",
      registers,
      fromReport((r) => r.pairs_checked),
    );
    const status = fromReport((r) => ({ healthy: 0, degraded: 1, critical: 2, unknown: -1 })[r.status]);
    new client.Gauge({
      name: "levelguard_health_status",
      help: "Status of the latest full check: 0 healthy, 1 degraded, 2 critical, -1 unknown",
      registers,
      async collect() {
        this.set((await status()) ?? -1);
      },
    });
    new client.Gauge({
      name: "levelguard_violations",
      help: "Violations of the latest successful full check, by kind",
      labelNames: ["kind"] as const,
      registers,
      async collect() {
        const byKind = (await latest())?.violations_by_kind;
        this.reset();
        if (byKind) { for (const kind of VIOLATION_KINDS) this.set({ kind }, byKind[kind]); }
      },
    });
    new OptionalGauge(
      "levelguard_seconds_since_last_successful_check",
      "Seconds since the latest successful full check finished (on any instance); absent before the first",
      registers,
      fromReport((r) =>
        r.last_check?.finished_at ? (Date.now() - new Date(r.last_check.finished_at).getTime()) / 1000 : null
      ),
    );
    const running = fromReport((r) => r.scan_running ? 1 : 0);
    new client.Gauge({
      name: "levelguard_check_running",
      help: "1 while any instance runs a full check",
      registers,
      async collect() {
        this.set((await running()) ?? 0);
      },
    });
    new client.Gauge({
      name: "levelguard_db_pool_size",
      help: "Connections the pool may open (DB_POOL_MAX)",
      registers,
    }).set(sources.poolSize);
    new client.Gauge({
      name: "levelguard_db_requests_pending",
      help: "Requests using or waiting for the database; more than the busy connections means a queue",
      registers,
      collect() {
        this.set(sources.databasePending());
      },
    });
    if (sources.connections) {
      const connections = oncePerScrape(sources.connections);
      new client.Gauge({
        name: "levelguard_db_connections",
        help: "This process's open database connections, by state (busy: running a statement or transaction)",
        labelNames: ["state"] as const,
        registers,
        async collect() {
          this.reset();
          const counts = await connections();
          if (counts) { for (const [state, n] of Object.entries(counts)) this.set({ state }, n); }
        },
      });
      new OptionalGauge(
        "levelguard_db_requests_waiting",
        "Requests waiting for a pool connection: pending requests beyond the busy connections (server mode)",
        registers,
        async () => {
          // No answer in time: the pool could not spare a connection for the count, so all are busy.
          const busy = (await connections())?.busy ?? sources.poolSize;
          return Math.max(0, sources.databasePending() - busy);
        },
      );
    }
    if (sources.rolloutPercent && sources.activeAdminIds) {
      this.#canaryGauges(sources.rolloutPercent, sources.activeAdminIds);
    }
    new client.Gauge({
      name: "levelguard_password_queue_length",
      help: "Password checks (logins) waiting for a slot",
      registers,
      collect() {
        this.set(sources.passwords.queued);
      },
    });
    new client.Gauge({
      name: "levelguard_password_checks_running",
      help: "Password checks running",
      registers,
      collect() {
        this.set(sources.passwords.running);
      },
    });
    new client.Counter({
      name: "levelguard_logins_shed_total",
      help: "Logins told to retry (503) because too many were waiting",
      registers,
      collect() {
        this.reset();
        this.inc(sources.passwords.shed);
      },
    });
    new client.Gauge({
      name: "levelguard_password_checks_allowed",
      help: "Password checks allowed at once now (every core while the event loop is idle, fewer while busy)",
      registers,
      collect() {
        this.set(sources.passwords.concurrency);
      },
    });
    if (sources.verifiedPasswords) {
      const verified = sources.verifiedPasswords;
      new client.Counter({
        name: "levelguard_password_checks_total",
        help:
          "Password checks of known accounts, by how they were answered: derived, kept (a kept success), joined (one in flight)",
        labelNames: ["answer"] as const,
        registers,
        collect() {
          this.reset();
          this.inc({ answer: "derived" }, verified.derivations);
          this.inc({ answer: "kept" }, verified.hits);
          this.inc({ answer: "joined" }, verified.joined);
        },
      });
    }
    if (sources.replica) {
      const replica = sources.replica;
      new client.Gauge({
        name: "levelguard_replica_in_use",
        help:
          "1 while heavy reads go to the replica (DATABASE_REPLICA_URL), 0 while they fall back to the primary",
        registers,
        collect() {
          this.set(replica().usable ? 1 : 0);
        },
      });
      new OptionalGauge(
        "levelguard_replica_lag_seconds",
        "How far the replica is behind the primary; absent while it cannot be measured",
        registers,
        () => Promise.resolve(replica().lagS),
      );
    }
    const liveStreams = () => this.#liveStreams();
    new client.Gauge({
      name: "levelguard_dashboard_live_streams",
      help: "Open dashboard event streams on this instance",
      registers,
      collect: function (this: client.Gauge) {
        this.set(liveStreams());
      },
    });
  }

  /**
   * The canary (the plan's "admins in the canary"): the dashboard's rollout
   * percentage and how many active admins it takes in (lib/canary/bucket.ts).
   * Both absent while the database does not answer within a second.
   */
  #canaryGauges(percent: () => Promise<number>, adminIds: () => Promise<number[]>) {
    const registers = [this.registry];
    const readPercent = oncePerScrape(() => withinMs(percent(), STATUS_READ_MS));
    const readIds = cachedRead(adminIds, ADMIN_IDS_MAX_AGE_MS, STATUS_READ_MS);
    new OptionalGauge(
      "levelguard_canary_rollout_percent",
      "Percentage of admins the new dashboard is rolled out to (0..100)",
      registers,
      readPercent,
    );
    new OptionalGauge(
      "levelguard_canary_admins",
      "Active admins inside the dashboard rollout (business gauge)",
      registers,
      async () => {
        const [p, ids] = await Promise.all([readPercent(), readIds()]);
        return p === null || ids === null ? null : ids.filter((id) => inRollout(id, p)).length;
      },
    );
    new OptionalGauge(
      "levelguard_active_admins",
      "Active admin accounts (the canary's population)",
      registers,
      async () => (await readIds())?.length ?? null,
    );
  }

  /** Every known label set starts at 0, so rates and alerts see a series before the first event. */
  #zero() {
    for (const trigger of TRIGGERS) {
      for (const outcome of ["success", "failure", "skipped"]) this.checks.inc({ trigger, outcome }, 0);
    }
    for (const result of ["success", "failure", "skipped"]) this.schedulerRuns.inc({ result }, 0);
    for (const result of ["applied", "replayed"]) this.xpChanges.inc({ result }, 0);
    for (const kind of ["down", "busy", "query"]) this.databaseErrors.inc({ kind }, 0);
    for (const task of BACKGROUND_TASKS) this.backgroundErrors.inc({ task }, 0);
    for (const result of ["sent", "failed"]) this.notifications.inc({ result }, 0);
  }

  /** Where the open dashboard streams are counted (the dashboard's routes). */
  countLiveStreams(read: () => number) {
    this.#liveStreams = read;
  }

  /** Counts the pairs a real repair fixed (a dry run fixes none). */
  recordRepair(result: RepairResult) {
    if (!result.dry_run) this.violationsRepaired.inc(result.repaired_pairs);
  }

  /** Counts a run that could not start (the database was down) as a failure. */
  recordUnstarted(trigger: Trigger) {
    this.checks.inc({ trigger, outcome: "failure" });
    if (trigger === "schedule") this.schedulerRuns.inc({ result: "failure" });
  }

  /** Counts a check this instance recorded (the runner calls this for every run it started). */
  recordCheck(check: CheckRecord) {
    this.checks.inc({ trigger: check.trigger, outcome: check.outcome });
    if (check.trigger === "schedule") {
      this.schedulerRuns.inc({ result: check.outcome === "running" ? "failure" : check.outcome });
    }
    if (check.scope_user_id === null && check.outcome === "success" && check.duration_ms !== null) {
      this.checkDuration.observe({ trigger: check.trigger }, check.duration_ms / 1000);
    }
  }

  /** The text format for a scrape: the process's default metrics, then Levelguard's. */
  async scrape(): Promise<string> {
    const [process, ours] = await Promise.all([processRegistry().metrics(), this.registry.metrics()]);
    return process + ours;
  }

  /** The scrape's content type. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
