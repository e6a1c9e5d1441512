/**
 * Serving HTTP: binding the port, with the failures a user meets there as one
 * line each, and the requests in flight, which a shutdown answers itself when
 * its grace period ends.
 *
 * Deno.serve (2.9) takes no header, body or idle timeout: measured, a client
 * that sends half its headers, half a body, or nothing on a keep-alive
 * connection keeps its socket open for as long as it likes (still open after
 * 590 s). Bodies are bounded in the app (REQUEST_BODY_TIMEOUT_MS); the rest is
 * the proxy's (ops/nginx/levelguard.conf).
 */
import { EnvironmentError } from "./errors.ts";

/** What `Deno.serve` calls per request. */
export type Handler = (
  request: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
) => Response | Promise<Response>;

/** Binds `hostname:port` and serves `handler`; a port in use or not allowed is an EnvironmentError. */
export function listen(
  options: { port: number; hostname: string; onListen: (addr: Deno.NetAddr) => void },
  handler: Handler,
): Deno.HttpServer<Deno.NetAddr> {
  try {
    return Deno.serve(
      { port: options.port, hostname: options.hostname, onListen: options.onListen },
      handler,
    );
  } catch (err) {
    const where = `${options.hostname}:${options.port}`;
    if (err instanceof Deno.errors.AddrInUse) {
      throw new EnvironmentError(`port ${options.port} is in use; set PORT`);
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new EnvironmentError(
        `port ${options.port} needs privileges this process lacks; set PORT above 1023`,
      );
    }
    if (err instanceof Deno.errors.AddrNotAvailable) {
      throw new EnvironmentError(`cannot listen on ${where}: the address is not on this machine; set HOST`);
    }
    throw new EnvironmentError(`cannot listen on ${where}: ${err instanceof Error ? err.message : err}`);
  }
}

/**
 * The requests being answered, so that a shutdown can answer those still
 * running at the end of its grace period (Deno's `server.shutdown()` waits for
 * every one, however long, and exiting would drop their connections). Costs a
 * promise and a map entry per request (~0.3 µs).
 */
export class InFlight {
  #waiting = new Map<Request, (response: Response) => void>();

  /** `answer` is what `cut()` sends each request still running. */
  constructor(readonly answer: (request: Request) => Response) {}

  /** `handler`, with its pending answers known to `cut()`. */
  wrap(handler: Handler): Handler {
    return (request, info) => {
      const answer = handler(request, info);
      if (!(answer instanceof Promise)) return answer;
      return new Promise<Response>((resolve, reject) => {
        this.#waiting.set(request, resolve);
        answer.then(
          (response) => {
            this.#waiting.delete(request);
            resolve(response);
          },
          (err) => {
            this.#waiting.delete(request);
            reject(err);
          },
        );
      });
    };
  }

  /** Requests whose handler has not answered yet. */
  get size(): number {
    return this.#waiting.size;
  }

  /** Answers every request still running with `answer` (their handlers' later answers are dropped); returns how many. */
  cut(): number {
    const cut = this.#waiting.size;
    for (const [request, resolve] of this.#waiting) resolve(this.answer(request));
    this.#waiting.clear();
    return cut;
  }
}
