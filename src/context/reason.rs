//! What a refused context attempt was and why: the `what` and `reason` of its LOG line and
//! the rows of `tenancy.stats()`. An enum, so a misspelt reason cannot compile.

use tenancy_core::Refusal;

/// What was being attempted, as the LOG line's `what` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    Token,
    ApiKey,
    /// A carrier read back from `tenancy.context` (the getters, a forwarded context).
    Context,
    Trusted,
    Support,
}

impl Attempt {
    pub fn name(self) -> &'static str {
        match self {
            Attempt::Token => "token",
            Attempt::ApiKey => "api_key",
            Attempt::Context => "context",
            Attempt::Trusted => "trusted",
            Attempt::Support => "support",
        }
    }
}

macro_rules! reasons {
    ($($variant:ident => $name:literal,)*) => {
        /// Why an attempt was refused: the LOG line's `reason` and `tenancy.stats()`'s rows.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Reason {
            $($variant,)*
        }

        impl Reason {
            /// Every reason, in the order `tenancy.stats()` lists them.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Reason::$variant => $name,)*
                }
            }
        }
    };
}

reasons! {
    // tokens and carriers (tenancy_core::Refusal)
    TooLong => "too_long",
    Malformed => "malformed",
    BadBase64 => "bad_base64",
    BadJson => "bad_json",
    UnsupportedAlg => "unsupported_alg",
    UnknownKid => "unknown_kid",
    NoMatchingKey => "no_matching_key",
    BadSignature => "bad_signature",
    Expired => "expired",
    NotYetValid => "not_yet_valid",
    WrongAudience => "wrong_audience",
    WrongIssuer => "wrong_issuer",
    MissingTenant => "missing_tenant",
    BadTenant => "bad_tenant",
    BadClaim => "bad_claim",
    CritHeader => "crit_header",
    // tenants
    InactiveTenant => "inactive_tenant",
    UnregisteredTenant => "unregistered_tenant",
    // API keys
    UnknownKey => "unknown_key",
    BadSecret => "bad_secret",
    Revoked => "revoked",
    // a context set earlier that no longer holds
    ApiKeyNoLongerValid => "api_key_no_longer_valid",
    SigningKeyRetired => "signing_key_retired",
    // a support carrier whose session ended, used by another role, or whose role lost the grant
    SupportSessionEnded => "support_session_ended",
    SupportSessionOtherRole => "support_session_other_role",
    SupportGrantRevoked => "support_grant_revoked",
    // a job's context (tenancy.claim_job()) used outside the transaction that claimed the job
    JobContextElsewhere => "job_context_elsewhere",
}

impl From<&Refusal> for Reason {
    fn from(r: &Refusal) -> Reason {
        match r {
            Refusal::TooLong => Reason::TooLong,
            Refusal::Malformed => Reason::Malformed,
            Refusal::BadBase64 => Reason::BadBase64,
            Refusal::BadJson => Reason::BadJson,
            Refusal::UnsupportedAlg => Reason::UnsupportedAlg,
            Refusal::UnknownKid => Reason::UnknownKid,
            Refusal::NoMatchingKey => Reason::NoMatchingKey,
            Refusal::BadSignature => Reason::BadSignature,
            Refusal::Expired => Reason::Expired,
            Refusal::NotYetValid => Reason::NotYetValid,
            Refusal::WrongAudience => Reason::WrongAudience,
            Refusal::WrongIssuer => Reason::WrongIssuer,
            Refusal::MissingTenant => Reason::MissingTenant,
            Refusal::BadTenant => Reason::BadTenant,
            Refusal::BadClaim(_) => Reason::BadClaim,
            Refusal::CritHeader => Reason::CritHeader,
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn every_core_refusal_has_its_own_reason_with_the_same_name() {
        for r in Refusal::EVERY {
            assert_eq!(Reason::from(&r).name(), r.reason());
        }
    }

    #[test]
    fn every_reason_has_its_own_counter_slot() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{}", r.name());
        }
    }

    #[test]
    fn reason_names_are_unique() {
        let mut names: Vec<_> = Reason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
    }
}
