-- identity: accounts, refresh tokens (hashes only) and the JWT signing keys.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    -- Normalized (trimmed, lower-case); one account per address.
    email         text NOT NULL UNIQUE,
    name          text,
    -- argon2id PHC string; the password itself is never stored.
    password_hash text NOT NULL,
    roles         text[] NOT NULL CHECK (cardinality(roles) > 0
                      AND roles <@ ARRAY['customer', 'seller', 'admin']::text[]),
    created_at    timestamptz NOT NULL
);

-- One row per refresh token ever issued. Tokens of one login share a
-- family; reusing a spent token revokes every token of its family.
CREATE TABLE refresh_tokens (
    -- SHA-256 of the token as the client holds it.
    token_hash bytea PRIMARY KEY,
    family_id  uuid NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    -- Set when exchanged for a new pair.
    used_at    timestamptz,
    -- Set on logout or on reuse of a spent token of the family.
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

-- Ed25519 signing keys. The newest key not superseded signs; superseded keys
-- stay published in the JWKS until every token they signed has expired, and
-- lose their private half when superseded.
CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    -- Raw 32-byte Ed25519 public key.
    public_key   bytea NOT NULL CHECK (length(public_key) = 32),
    -- PKCS#8 document, AES-256-GCM encrypted (nonce || ciphertext) when
    -- `encrypted`; NULL once superseded.
    private_key  bytea,
    encrypted    boolean NOT NULL,
    created_at   timestamptz NOT NULL,
    superseded_at timestamptz,
    CHECK (superseded_at IS NOT NULL OR private_key IS NOT NULL)
);
-- At most one active (signing) key, whatever the number of replicas.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE superseded_at IS NULL;
