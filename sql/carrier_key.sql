-- pg_tenancy: the per-installation key that signs the context carrier (tenancy.carrier_key,
-- one row, never shown; not dumped: a restored database makes its own).
--
-- Comes after tenancy._random_bytes() (Rust), which this statement runs, and after the
-- registry triggers (registry_triggers.sql), so that making the key is a registry change like
-- any later change of it. See src/install.rs.

INSERT INTO tenancy.carrier_key (secret) VALUES (tenancy._random_bytes(32));
