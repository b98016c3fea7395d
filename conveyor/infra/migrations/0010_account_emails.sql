-- Account e-mails: an address is verified once its owner sends back the code an e-mail
-- carried; a forgotten password is replaced with a code e-mailed the same way.
--
-- Accounts from before stay unverified: no one has proven their address yet. The edge marks
-- the first admin (CONVEYOR_ADMIN_EMAIL) verified at start-up.
ALTER TABLE users ADD COLUMN IF NOT EXISTS email_verified_at timestamptz;

-- Single-use codes, one row each, deleted when used. Only a SHA-256 of each code is kept, so
-- a leaked table verifies no address and resets no password.
CREATE TABLE IF NOT EXISTS account_tokens (
    token_hash text PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS account_tokens_user ON account_tokens (user_id, purpose);
CREATE INDEX IF NOT EXISTS account_tokens_expiry ON account_tokens (expires_at);

-- The outbox: an e-mail waiting for the mail server, written in the transaction that made its
-- code, so no code is made without its e-mail and no e-mail lost with an edge that stops. It
-- holds the code itself (the e-mail must), so a row is deleted as soon as the server
-- accepted it, or once its code has expired and the e-mail would be of no use.
CREATE TABLE IF NOT EXISTS account_emails (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose         text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    recipient       text NOT NULL,
    name            text NOT NULL,
    token           text NOT NULL,
    expires_at      timestamptz NOT NULL,
    -- Failed sends so far; the next try waits longer after each.
    attempts        integer NOT NULL DEFAULT 0,
    -- When a sender may take it: now for a new one; while a sender has it, when its claim
    -- lapses (a sender that stopped mid-send leaves it to another).
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text
);
CREATE INDEX IF NOT EXISTS account_emails_due ON account_emails (next_attempt_at);
