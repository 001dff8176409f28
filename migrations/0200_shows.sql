-- Live shows (video comes with the streaming issue) and their chat restrictions.
CREATE TABLE shows (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seller_id   uuid NOT NULL REFERENCES users (id),
    title       text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    state       text NOT NULL DEFAULT 'scheduled' CHECK (state IN ('scheduled', 'live', 'ended')),
    starts_at   timestamptz,
    started_at  timestamptz,
    ended_at    timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shows_by_state ON shows (state, created_at DESC);
CREATE INDEX shows_by_seller ON shows (seller_id, created_at DESC);

-- A muted user may read the chat but not write; a banned one may do neither.
CREATE TABLE show_chat_restrictions (
    show_id     uuid NOT NULL REFERENCES shows (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('mute', 'ban')),
    created_by  uuid NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (show_id, user_id)
);
