//! Access reviews: definitions, rounds, items and decisions; a person's manager (who reviews
//! them in a `managers` review).

use serde::{Deserialize, Serialize};

api_type! {
    /// `POST /api/v1/reviews`: a review of every eligible and active assignment of `role` in
    /// `scope`.
    pub struct CreateReviewRequest {
        pub role: String,
        /// `/` (default: every scope) or one scope.
        #[serde(default)]
        pub scope: Option<String>,
        /// `group:NAME` (a role-assignable group), `user:NAME` or `managers`.
        pub reviewers: String,
        /// For `managers`: who reviews principals without a manager (`group:NAME` or `user:NAME`).
        #[serde(default)]
        pub fallback: Option<String>,
        /// How often a round opens (`90d`); none: one round, then more only by `start`.
        #[serde(default)]
        pub every: Option<String>,
        /// How long a round stays open (`14d` unless given).
        #[serde(default)]
        pub duration: Option<String>,
        /// What an undecided item gets at the close: `keep` or `remove`.
        pub default_decision: String,
    }
}

api_type! {
    /// One round of a review, in short.
    pub struct ReviewRoundSummary {
        pub id: String,
        /// `open`, `closed` or `cancelled`.
        pub state: String,
        pub opened_at: String,
        pub closes_at: String,
        pub closed_at: Option<String>,
        pub items: i64,
        pub decided: i64,
    }
}

api_type! {
    /// An access review and its rounds (newest first).
    pub struct ReviewView {
        pub id: String,
        pub role: String,
        pub scope: String,
        pub reviewers: String,
        pub fallback: Option<String>,
        /// Between rounds (`90d`), or none for a review that opens rounds only on request.
        pub every: Option<String>,
        /// How long a round stays open (`14d`).
        pub duration: String,
        pub default_decision: String,
        pub created_by: String,
        pub created_at: String,
        /// False once deleted (its rounds stay for the record).
        pub enabled: bool,
        /// When the next round opens by the schedule.
        pub next_round_at: Option<String>,
        pub rounds: Vec<ReviewRoundSummary>,
    }
}

api_type! {
    /// One assignment under review in a round.
    pub struct ReviewItemView {
        pub review_id: String,
        pub round_id: String,
        pub assignment_id: String,
        /// `user:NAME`, `group:NAME` or `service_account:NAME`.
        pub principal: String,
        pub role: String,
        pub scope: String,
        /// `eligible` or `active`.
        pub kind: String,
        /// Who decides it: `user:NAME` or `group:NAME`.
        pub reviewer: String,
        /// `keep` or `remove` (none yet: the default applies at the close).
        pub decision: Option<String>,
        pub reason: Option<String>,
        /// The reviewer (`user:NAME`), or `default` for a decision made by the close.
        pub decided_by: Option<String>,
        pub decided_at: Option<String>,
        /// When the close applied it.
        pub applied_at: Option<String>,
        /// What the close did: `kept`, `removed`, `already_ended`, `refused_breakglass_minimum`
        /// or `refused_last_global_administrator`.
        pub outcome: Option<String>,
        /// When the round closes.
        pub closes_at: String,
        /// Whether the caller may decide it now.
        pub can_decide: bool,
    }
}

api_type! {
    /// A round with its items (those the caller reviews, or all of them with `reviews.read`).
    pub struct ReviewRoundView {
        pub id: String,
        pub review_id: String,
        pub role: String,
        pub scope: String,
        pub state: String,
        pub default_decision: String,
        pub opened_at: String,
        pub closes_at: String,
        pub reminder_at: String,
        pub reminded_at: Option<String>,
        pub closed_at: Option<String>,
        pub items: Vec<ReviewItemView>,
    }
}

api_type! {
    /// `POST /api/v1/reviews/rounds/{round}/items/{assignment}/decide`.
    pub struct ReviewDecisionRequest {
        /// `keep` or `remove`.
        pub decision: String,
        /// Why (required; recorded).
        pub reason: String,
    }
}

api_type! {
    /// `PUT /api/v1/users/{name}/manager`: who manages a person (their reviewer in a
    /// `managers` review); none removes it.
    pub struct SetManagerRequest {
        #[serde(default)]
        pub manager: Option<String>,
    }
}
