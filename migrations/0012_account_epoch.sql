-- Authority follows the account. Every access token carries the epoch of its
-- account (claim `ep`), and the account's epoch moves on whenever what a
-- token vouches for changes: it is activated or deactivated, its role
-- changes, or its password does. Whoever writes the row (the app,
-- `deno task admin:password`, psql) moves it, since the database does it here.
-- A token of an earlier epoch is refused on every instance; the dashboard's
-- sessions of the account end in the same transaction.
ALTER TABLE users ADD COLUMN auth_epoch integer NOT NULL DEFAULT 0;

-- Moves the epoch on. Also when a writer sets auth_epoch itself (an operator's
-- "sign this account out everywhere": SET auth_epoch = auth_epoch + 1); it
-- never goes back, since an older epoch would revive the tokens it ended.
CREATE FUNCTION users_next_auth_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.auth_epoch := greatest(NEW.auth_epoch, OLD.auth_epoch + 1);
  RETURN NEW;
END
$$;

CREATE TRIGGER users_auth_epoch
  BEFORE UPDATE ON users
  FOR EACH ROW WHEN (
    NEW.is_active IS DISTINCT FROM OLD.is_active
    OR NEW.role IS DISTINCT FROM OLD.role
    OR NEW.hashed_password IS DISTINCT FROM OLD.hashed_password
    OR NEW.auth_epoch IS DISTINCT FROM OLD.auth_epoch
  )
  EXECUTE FUNCTION users_next_auth_epoch();

-- Once the change is certain: the account's dashboard sessions end with it
-- (pages look their session up on every request), and every instance hears
-- of the new state on commit (LISTEN levelguard_accounts; lib/accounts.ts).
CREATE FUNCTION users_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('levelguard_accounts', json_build_object('id', OLD.id, 'deleted', true)::text);
    RETURN NULL;
  END IF;
  DELETE FROM admin_sessions WHERE user_id = NEW.id;
  PERFORM pg_notify('levelguard_accounts', json_build_object(
    'id', NEW.id, 'epoch', NEW.auth_epoch, 'active', NEW.is_active, 'role', NEW.role)::text);
  RETURN NULL;
END
$$;

CREATE TRIGGER users_auth_changed
  AFTER UPDATE ON users
  FOR EACH ROW WHEN (NEW.auth_epoch IS DISTINCT FROM OLD.auth_epoch)
  EXECUTE FUNCTION users_auth_changed();

-- Users are deactivated rather than deleted; a deletion still ends its tokens at once.
CREATE TRIGGER users_auth_deleted
  AFTER DELETE ON users
  FOR EACH ROW
  EXECUTE FUNCTION users_auth_changed();

-- Instances that cannot LISTEN (through a pooler without DATABASE_DIRECT_URL)
-- compare the epochs of the accounts they hold with these rows twice a
-- second: primary-key lookups, no index of their own (lib/accounts.ts says
-- why not a "changed since" cursor).
