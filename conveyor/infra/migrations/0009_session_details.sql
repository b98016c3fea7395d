-- What a user sees of their logins (GET /users/me/sessions) and what bounds a login's life.
-- Every token row of a family carries its login's details, copied on each refresh, so the
-- live row alone answers the list and the older rows can be pruned as before.
--   login_started_at: when the user signed in; a login ends CONVEYOR_SESSION_MAX_SECONDS
--     after it, however often it is refreshed. Rows from before take their family's first.
--   user_agent, client_address: those of the sign-in request (no User-Agent is NULL).
ALTER TABLE sessions
    ADD COLUMN IF NOT EXISTS login_started_at timestamptz,
    ADD COLUMN IF NOT EXISTS user_agent text,
    ADD COLUMN IF NOT EXISTS client_address text;

UPDATE sessions s SET login_started_at = f.started
FROM (SELECT family_id, min(created_at) AS started FROM sessions GROUP BY family_id) f
WHERE s.family_id = f.family_id AND s.login_started_at IS NULL;

ALTER TABLE sessions ALTER COLUMN login_started_at SET NOT NULL;

-- A user's live logins, newest first, without reading their ended tokens.
CREATE INDEX IF NOT EXISTS sessions_live_by_user
    ON sessions (user_id, login_started_at DESC, family_id DESC) WHERE revoked_at IS NULL;
