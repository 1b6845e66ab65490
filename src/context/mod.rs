//! The tenant context: setting it from a token, an API key or the trusted tier, reading it
//! (the getters every policy calls), clearing it; refusing a credential (the LOG line, the
//! counter and the 28000 error, in `refusal`); and the rule that a pooled connection's
//! leftover temporary objects block a new context.

pub mod reason;
pub mod refusal;
pub mod session_objects;
pub mod setting;
pub mod stats;
pub mod tenant_context;
