//! Argument checks shared by every entry point. Each raises 22023 naming the argument, quoting
//! at most a short prefix of what was given, with the rule as its hint, so that the same kind
//! of value is refused with the same words wherever it is passed.

use tenancy_core::ident;

use crate::infra::errors;

const TENANT_ID_RULE: &str = "tenant ids are 1 to 128 characters of letters, digits, '.', '_', ':', '@' or '-'; a uuid or a decimal integer is fine";
const NAME_RULE: &str = "1 to 64 characters of letters, digits, '.', '_', ':' or '-'";

/// 22023 unless `id` is a valid tenant id (`ident::valid_tenant_id`).
pub fn tenant_id(id: &str) {
    if !ident::valid_tenant_id(id) {
        errors::bad_argument(
            format!("invalid tenant id {}", errors::quoted(id)),
            Some(TENANT_ID_RULE),
        );
    }
}

/// 22023 unless `value` is an identifier-like name (key ids, pseudonym secret ids).
/// `what` names it in the message: "key id", "pseudonym secret id".
pub fn key_name(what: &str, value: &str) {
    if !ident::valid_kid(value) {
        errors::bad_argument(
            format!("invalid {what} {}", errors::quoted(value)),
            Some(&format!("{what}s are {NAME_RULE}")),
        );
    }
}

/// 22023 unless `value` is a valid feature name.
pub fn feature(value: &str) {
    if !ident::valid_feature(value) {
        errors::bad_argument(
            format!("invalid feature name {}", errors::quoted(value)),
            Some(&format!("feature names are {NAME_RULE}")),
        );
    }
}

/// 22023 unless `value` is free text a reader or a check relies on (`ident::valid_text`):
/// 1 to `max` characters, no control or invisible characters, spaces only inside.
/// `message` is the whole refusal, e.g. "label must be 1 to 200 characters …".
pub fn text(value: &str, max: usize, message: &str, hint: Option<&str>) {
    if !ident::valid_text(value, max) {
        errors::bad_argument(message.into(), hint);
    }
}

/// The usual refusal of [`text`]: "{what} must be 1 to {max} characters without control or
/// invisible characters, spaces only inside".
pub fn plain_text(what: &str, value: &str, max: usize) {
    if !ident::valid_text(value, max) {
        errors::bad_argument(
            format!("{what} must be 1 to {max} characters without control or invisible characters, spaces only inside"),
            None,
        );
    }
}
