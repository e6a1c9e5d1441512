/** Binding the HTTP port, with the failures a user meets there as one line each. */
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
