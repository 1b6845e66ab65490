//! Managing who is who: creating and deactivating tenants, signing keys and token minting,
//! API keys. Every change is audited and tells every backend's registry cache to forget.

pub mod apikeys;
pub mod keys;
pub mod tenants;
