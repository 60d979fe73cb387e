//! Change requests: four eyes on the PAM's own settings.

use serde::{Deserialize, Serialize};

api_type! {
    /// A weakening change waiting for a second top-tier person, or how it ended.
    pub struct ChangeRequestView {
        pub id: String,
        /// `role_settings` or `bind_role`.
        pub kind: String,
        /// What it changes, e.g. `role:global-administrator`, `target:db role:dba`.
        pub subject: String,
        /// The change as asked (the operation's request body).
        pub change: serde_json::Value,
        /// How it weakens the PAM, e.g. `weaker_strength`, `approval_removed`.
        pub weakenings: Vec<String>,
        pub requested_by: String,
        pub requested_at: String,
        /// When it takes effect by itself (the cooling-off, where nobody else can approve it);
        /// absent: only by approval.
        pub effective_at: Option<String>,
        /// `pending`, `applied`, `denied` or `cancelled`.
        pub state: String,
        pub decided_by: Option<String>,
        pub decided_at: Option<String>,
        pub reason: Option<String>,
    }
}

api_type! {
    /// `POST /api/v1/changes/{id}/approve|deny|cancel`.
    #[derive(Default)]
    pub struct ChangeDecisionRequest {
        #[serde(default)]
        pub reason: Option<String>,
    }
}
