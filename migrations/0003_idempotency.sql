-- Idempotency-Key records (see core/idempotency.py). A row is written in the same transaction
-- as the work it guards, so a failed request leaves no row and may be retried.
CREATE TABLE idempotency_keys (
    user_id      uuid NOT NULL,
    scope        text NOT NULL,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash bytea NOT NULL,
    status_code  integer NOT NULL,
    response     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
