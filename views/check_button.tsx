/**
 * "Check now": a plain form (works without JavaScript: POST, then redirect);
 * with htmx it posts in the background and swaps the live panel, in the
 * panel's queue: a refresh asked for when the check started (the SSE event)
 * goes after the answer, never over it with the status before the check.
 * Disabled while any instance runs a full check.
 */
export function CheckButton(
  props: { running: boolean; csrfToken: string; hidden: Record<string, string | undefined> },
) {
  return (
    <form
      method="post"
      action="/admin/health/check"
      hx-post="/admin/health/check"
      hx-target="#live"
      hx-sync="#live:queue last"
      hx-disabled-elt="find button"
      class="check-form"
    >
      <input type="hidden" name="_csrf" value={props.csrfToken} />
      {Object.entries(props.hidden).filter(([, v]) => v).map(([name, value]) => (
        <input type="hidden" name={name} value={value} />
      ))}
      <button type="submit" class="primary" disabled={props.running} aria-describedby="check-state">
        <span class="when-idle">Check now</span>
        <span class="when-busy" aria-hidden="true">Checking…</span>
      </button>
      <span id="check-state" class="check-state" role="status">
        {props.running ? "A check is running…" : ""}
      </span>
    </form>
  );
}
