-- Rider tracking and dispatch (tracking/): device keys, availability, position history
-- partitioned by day, dispatch jobs and offers, geofence events, and the orders' drop-off.

CREATE TABLE tracking_devices (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    rider_id     uuid NOT NULL REFERENCES users (id),
    key_hash     bytea NOT NULL UNIQUE,  -- sha256 of the key; the key itself is shown once
    label        text CHECK (length(label) <= 100),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX tracking_devices_rider ON tracking_devices (rider_id, created_at);

CREATE TABLE tracking_riders (
    rider_id   uuid PRIMARY KEY REFERENCES users (id),
    available  boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One partition per UTC day (tracking_positions_YYYYMMDD), created ahead by the server and
-- dropped whole by retention (TRACKING_KEEP_DAYS).
CREATE TABLE tracking_positions (
    rider_id    uuid NOT NULL,
    ts          timestamptz NOT NULL,  -- device time
    lat         double precision NOT NULL,
    lon         double precision NOT NULL,
    speed       real,                  -- m/s
    heading     real,
    accuracy    real,
    altitude    real,
    received_at timestamptz NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX tracking_positions_rider_ts ON tracking_positions (rider_id, ts);

-- Where a seller's parcels are picked up (the last pickup given to a dispatch).
CREATE TABLE tracking_pickups (
    seller_id  uuid PRIMARY KEY REFERENCES users (id),
    lat        double precision NOT NULL,
    lon        double precision NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dispatch_jobs (
    order_id   uuid PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    pickup_lat double precision NOT NULL,
    pickup_lon double precision NOT NULL,
    radius_m   integer NOT NULL CHECK (radius_m > 0),
    round      integer NOT NULL DEFAULT 0,
    state      text NOT NULL CHECK (state IN ('open', 'assigned', 'failed')),
    next_at    timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dispatch_jobs_due ON dispatch_jobs (next_at) WHERE state = 'open';

CREATE TABLE dispatch_offers (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id   uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    rider_id   uuid NOT NULL REFERENCES users (id),
    round      integer NOT NULL,
    state      text NOT NULL CHECK (state IN ('offered', 'accepted', 'taken', 'expired')),
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dispatch_offers_order ON dispatch_offers (order_id, rider_id);
-- Exactly one winner per order, whatever races.
CREATE UNIQUE INDEX dispatch_offers_one_winner ON dispatch_offers (order_id)
    WHERE state = 'accepted';

-- Each geofence event of an order happens once.
CREATE TABLE tracking_geofence_events (
    order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    kind     text NOT NULL CHECK (kind IN ('near_pickup', 'arriving')),
    rider_id uuid NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, kind)
);

-- The drop-off a buyer gives at checkout (optional).
ALTER TABLE orders ADD COLUMN dropoff_lat double precision,
                   ADD COLUMN dropoff_lon double precision;
