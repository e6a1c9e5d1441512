/** Progress of a long task on a terminal: done/total, rate and time left on stderr; silent when not a TTY. */

/** Returns a reporter for `what` (e.g. "students"); call it with done and total, and `finish()` at the end. */
export function progressLine(what: string, stream = Deno.stderr) {
  const enabled = stream.isTerminal();
  const started = performance.now();
  const encoder = new TextEncoder();
  let last = 0;
  const write = (text: string) => stream.writeSync(encoder.encode(text));
  const report = (done: number, total: number) => {
    if (!enabled) return;
    const now = performance.now();
    if (done < total && now - last < 200) return;
    last = now;
    const seconds = (now - started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const left = rate > 0 ? Math.ceil((total - done) / rate) : null;
    const pct = total ? Math.floor((done / total) * 100) : 100;
    write(
      `\r\x1b[2K  ${done.toLocaleString("en")} / ${total.toLocaleString("en")} ${what} (${pct} %)` +
        `, ${Math.round(rate).toLocaleString("en")}/s${
          left !== null && done < total ? `, about ${left} s left` : ""
        }`,
    );
  };
  return Object.assign(report, {
    finish() {
      if (enabled) write("\r\x1b[2K");
    },
  });
}
