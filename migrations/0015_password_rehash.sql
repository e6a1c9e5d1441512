-- A password hash upgraded to stronger parameters on a successful login
-- (lib/auth.ts) holds the same password: what the account's tokens vouch for
-- has not changed, so it must not move `auth_epoch` (migration 0012), which
-- would sign the user out everywhere at their next login. The upgrade says so
-- in its own transaction, `set_config('levelguard.password_rehash', 'on', true)`,
-- and the epoch stays only when that is all the update does: the hash's
-- parameters (everything before its salt) change, nothing else that moves the
-- epoch does. Any other writer (the app's password change, `deno task
-- admin:password`, psql) still moves it, as before.
CREATE OR REPLACE FUNCTION users_next_auth_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('levelguard.password_rehash', true) = 'on'
    AND NEW.is_active IS NOT DISTINCT FROM OLD.is_active
    AND NEW.role IS NOT DISTINCT FROM OLD.role
    AND NEW.auth_epoch IS NOT DISTINCT FROM OLD.auth_epoch
    -- `scrypt$N$r$p$salt$hash` without `$salt$hash`: the parameters must be new ones.
    AND regexp_replace(NEW.hashed_password, '\$[^$]*\$[^$]*$', '')
      IS DISTINCT FROM regexp_replace(OLD.hashed_password, '\$[^$]*\$[^$]*$', '')
  THEN
    RETURN NEW;
  END IF;
  NEW.auth_epoch := greatest(NEW.auth_epoch, OLD.auth_epoch + 1);
  RETURN NEW;
END
$$;
