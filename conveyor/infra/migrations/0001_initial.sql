-- Conveyor's first schema: accounts and sessions owned by the edge, the catalog, and the
-- read models the projector materializes from Kafka (orders, stock, payments, notifications).

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    password_hash text NOT NULL,
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Addresses differ in case only by accident: Ada@x.org and ada@x.org are one account.
CREATE UNIQUE INDEX users_email_unique ON users (lower(email));
CREATE INDEX users_created ON users (created_at DESC, id DESC);

CREATE TABLE profiles (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    bio        text CHECK (length(bio) <= 2000),
    avatar_url text CHECK (length(avatar_url) <= 2048),
    location   text CHECK (length(location) <= 200),
    phone      text CHECK (length(phone) <= 40),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Refresh-token sessions. Only a hash of each token is kept, so a leaked table grants
-- nothing; a family is every token descended from one login, revoked whole when a token
-- that was already rotated is presented again (a sign it was stolen).
CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    replaced_by uuid REFERENCES sessions (id) ON DELETE SET NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_family ON sessions (family_id);

CREATE TABLE products (
    id          uuid PRIMARY KEY,
    sku         text NOT NULL UNIQUE CHECK (length(sku) BETWEEN 1 AND 64),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    price       numeric(12, 2) NOT NULL CHECK (price >= 0),
    currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    category    text NOT NULL DEFAULT '',
    -- Orders keep pointing at a product after it leaves the catalog, so it is hidden, not deleted.
    deleted_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- A name match outranks a description match.
    search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(name, '')), 'A')
        || setweight(to_tsvector('english', coalesce(description, '')), 'B')
    ) STORED
);
CREATE INDEX products_search ON products USING gin (search_vector);
CREATE INDEX products_category ON products (category) WHERE deleted_at IS NULL;
CREATE INDEX products_price ON products (price) WHERE deleted_at IS NULL;
CREATE INDEX products_listing ON products (created_at DESC, id DESC) WHERE deleted_at IS NULL;

-- The inventory read model, projected from inventory.events.
CREATE TABLE stock (
    product_id    uuid PRIMARY KEY,
    available     integer NOT NULL CHECK (available >= 0),
    reserved      integer NOT NULL CHECK (reserved >= 0),
    sold          integer NOT NULL CHECK (sold >= 0),
    last_event_id uuid,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Orders are written by the edge when it accepts one and moved along by the projector from
-- orders.events. No foreign key to users: the projector may see an order's events before
-- or without the edge's row, and an order outlives the deletion of its customer's account.
CREATE TABLE orders (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL,
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'confirmed', 'rejected', 'cancelled')),
    reason          text CHECK (reason IN ('out_of_stock', 'payment_declined', 'payment_unavailable')),
    total           numeric(12, 2) NOT NULL CHECK (total >= 0),
    currency        char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- The same Idempotency-Key from the same user is the same order, never a second one.
    UNIQUE (user_id, idempotency_key),
    CHECK ((status = 'rejected') = (reason IS NOT NULL))
);
CREATE INDEX orders_by_user_newest ON orders (user_id, created_at DESC, id DESC);
CREATE INDEX orders_newest ON orders (created_at DESC, id DESC);
CREATE INDEX orders_status ON orders (status);

CREATE TABLE order_items (
    order_id   uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id uuid NOT NULL,
    quantity   integer NOT NULL CHECK (quantity >= 1),
    price      numeric(12, 2) NOT NULL CHECK (price >= 0),
    subtotal   numeric(12, 2) NOT NULL CHECK (subtotal = price * quantity),
    PRIMARY KEY (order_id, product_id)
);

CREATE TABLE payments (
    order_id   uuid PRIMARY KEY,
    payment_id text NOT NULL UNIQUE,
    status     text NOT NULL CHECK (status IN ('authorized', 'refunded')),
    amount     numeric(12, 2) NOT NULL CHECK (amount >= 0),
    currency   char(3) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE notifications (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL,
    order_id   uuid NOT NULL,
    event      text NOT NULL CHECK (event IN ('OrderConfirmed', 'OrderRejected', 'OrderCancelled')),
    recipient  text NOT NULL,
    subject    text NOT NULL,
    sent_at    timestamptz NOT NULL,
    -- Each terminal event of an order produces exactly one email.
    UNIQUE (order_id, event)
);
CREATE INDEX notifications_by_user_newest ON notifications (user_id, sent_at DESC, id DESC);

-- Events a consumer has already applied, so a redelivered event changes nothing.
CREATE TABLE processed_events (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
