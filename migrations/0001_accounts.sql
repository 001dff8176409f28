-- Accounts and refresh-token families.
CREATE TABLE users (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email            text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    email_normalized text NOT NULL UNIQUE,
    password_hash    text NOT NULL,
    display_name     text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 80),
    role             text NOT NULL CHECK (role IN ('buyer', 'seller', 'rider', 'admin')),
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Opaque refresh tokens, stored only as SHA-256 digests. Each login starts a family; each
-- refresh marks its token used and issues a child. Presenting a used token again revokes the
-- whole family (the server cannot tell the thief from the owner).
CREATE TABLE refresh_tokens (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash     bytea NOT NULL UNIQUE,
    family_id      uuid NOT NULL,
    parent_id      uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at      timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
