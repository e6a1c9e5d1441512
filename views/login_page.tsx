/** The sign-in page, and the page for signed-in users who are not admins. */
import { type Assets, Layout } from "./layout.tsx";

/** The sign-in form; `error` is one line for the user, `next` where to go afterwards. */
export function LoginPage(
  props: { assets: Assets; csrfToken: string; next: string; email?: string; error?: string },
) {
  return (
    <Layout title="Sign in" assets={props.assets}>
      <section class="card narrow">
        <h1>Sign in</h1>
        <p class="muted">The health dashboard is for Levelguard admins.</p>
        {props.error && (
          <p class="alert" role="alert">
            {props.error}
          </p>
        )}
        <form method="post" action="/admin/login" class="stack">
          <input type="hidden" name="_csrf" value={props.csrfToken} />
          <input type="hidden" name="next" value={props.next} />
          <label for="email">Email</label>
          <input
            id="email"
            name="email"
            type="email"
            autocomplete="username"
            required
            value={props.email ?? ""}
          />
          <label for="password">Password</label>
          <input id="password" name="password" type="password" autocomplete="current-password" required />
          <button type="submit" class="primary">Sign in</button>
        </form>
      </section>
    </Layout>
  );
}

/** A signed-in user without the ADMIN role. */
export function ForbiddenPage(props: { assets: Assets; email: string; role: string }) {
  return (
    <Layout title="Not for your role" assets={props.assets}>
      <section class="card narrow">
        <h1>Admins only</h1>
        <p>
          You are signed in as <strong>{props.email}</strong>{" "}
          ({props.role.toLowerCase()}). The health dashboard is for admins; ask one to look, or sign in with
          an admin account.
        </p>
        <p>
          <a href="/admin/login">Sign in as someone else</a>
        </p>
      </section>
    </Layout>
  );
}

/** A page for a problem the user can act on (unknown student, expired form, ...). */
export function MessagePage(props: { assets: Assets; title: string; message: string; back?: string }) {
  return (
    <Layout title={props.title} assets={props.assets}>
      <section class="card narrow">
        <h1>{props.title}</h1>
        <p>{props.message}</p>
        <p>
          <a href={props.back ?? "/admin/health"}>Back to the dashboard</a>
        </p>
      </section>
    </Layout>
  );
}
