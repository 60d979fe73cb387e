//! Roles, their settings, assignments, activation requests and decisions.

use serde::{Deserialize, Serialize};

api_type! {
    /// A role: built-in or custom, with its permissions.
    pub struct RoleView {
        pub slug: String,
        pub display_name: String,
        pub description: String,
        pub builtin: bool,
        pub permissions: Vec<String>,
    }
}

api_type! {
    /// `POST /api/v1/roles`: a custom role.
    pub struct CreateRoleRequest {
        pub slug: String,
        #[serde(default)]
        pub display_name: Option<String>,
        #[serde(default)]
        pub description: String,
        pub permissions: Vec<String>,
    }
}

api_type! {
    /// A role's settings. Durations in seconds.
    pub struct RoleSettingsView {
        pub role: String,
        pub max_activation_seconds: i64,
        pub required_strength: String,
        pub require_justification: bool,
        pub require_ticket: bool,
        pub require_approval: bool,
        pub approvers: Vec<String>,
        pub approvals_required: u32,
        pub max_eligible_seconds: Option<i64>,
        pub max_active_seconds: Option<i64>,
        pub allow_permanent_active: bool,
        pub notify: Vec<String>,
    }
}

api_type! {
    /// `PUT /api/v1/roles/{role}/settings`: only the fields given change.
    #[derive(Default)]
    pub struct RoleSettingsUpdate {
        #[serde(default)]
        pub max_activation_seconds: Option<i64>,
        #[serde(default)]
        pub required_strength: Option<String>,
        #[serde(default)]
        pub require_justification: Option<bool>,
        #[serde(default)]
        pub require_ticket: Option<bool>,
        #[serde(default)]
        pub require_approval: Option<bool>,
        #[serde(default)]
        pub approvers: Option<Vec<String>>,
        #[serde(default)]
        pub approvals_required: Option<u32>,
        #[serde(default)]
        pub notify: Option<Vec<String>>,
    }
}

api_type! {
    /// An assignment: principal × role × scope, eligible or active, with its time window.
    pub struct AssignmentView {
        pub id: String,
        /// `user:NAME`, `group:NAME` or `service_account:NAME`.
        pub principal: String,
        pub role: String,
        pub scope: String,
        /// `eligible` or `active`.
        pub kind: String,
        pub starts_at: String,
        /// Absent: permanent.
        pub ends_at: Option<String>,
        pub created_by: String,
        pub ended_at: Option<String>,
        pub end_reason: Option<String>,
    }
}

api_type! {
    /// `POST /api/v1/assignments`. `principal` is `NAME` (a user), or `user:NAME`,
    /// `group:NAME`, `service_account:NAME`; `duration_seconds` or `ends_at` (RFC 3339) bound
    /// it, neither means permanent (if the role's settings allow it). Role `group-member` at
    /// scope `/groups/NAME` (eligible only) is just-in-time membership of role-assignable
    /// group NAME.
    pub struct CreateAssignmentRequest {
        pub principal: String,
        pub role: String,
        /// `/` (the default), `/targets/NAME`, `/apps/NAME`, or `/groups/NAME` for `group-member`.
        #[serde(default)]
        pub scope: Option<String>,
        /// `eligible` (the default) or `active`.
        #[serde(default)]
        pub kind: Option<String>,
        #[serde(default)]
        pub duration_seconds: Option<i64>,
        #[serde(default)]
        pub ends_at: Option<String>,
    }
}

api_type! {
    /// `POST /api/v1/assignments/{id}/make-eligible`: turn a live active assignment into an
    /// eligible one for the same principal, role and scope (the active one ends in the same
    /// step). `duration_seconds` bounds the eligible assignment; none means permanent, where
    /// the role's settings allow it.
    pub struct MakeEligibleRequest {
        #[serde(default)]
        pub duration_seconds: Option<i64>,
    }
}

api_type! {
    /// `POST /api/v1/requests`: activate an eligible role, now or (with `starts_at`) later;
    /// role `group-member` at `/groups/NAME` joins role-assignable group NAME just in time.
    pub struct CreateActivationRequest {
        pub role: String,
        /// `/` (the default), `/targets/NAME`, `/apps/NAME`, or `/groups/NAME` for `group-member`.
        #[serde(default)]
        pub scope: Option<String>,
        pub duration_seconds: i64,
        #[serde(default)]
        pub justification: Option<String>,
        #[serde(default)]
        pub ticket: Option<String>,
        /// RFC 3339: schedule the activation to start then (in the future, at most 30 days
        /// ahead, while the eligibility still lives). Approval, where the role needs it, can be
        /// given ahead; the grant starts at this time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub starts_at: Option<String>,
    }
}

api_type! {
    /// `POST /api/v1/requests/{id}/extend`: ask for more time on one's own active activation,
    /// before it ends. The extended end is at most the role's maximum activation from now, and
    /// never past the eligibility; the same approval rules apply, and the activation keeps
    /// running until the extension is decided.
    pub struct ExtendActivationRequest {
        /// Seconds added to the activation's current end.
        pub duration_seconds: i64,
        #[serde(default)]
        pub justification: Option<String>,
        #[serde(default)]
        pub ticket: Option<String>,
    }
}

api_type! {
    /// An activation request and where it stands.
    pub struct ActivationRequestView {
        pub id: String,
        pub requester: String,
        pub role: String,
        pub scope: String,
        /// `pending_approval`, `scheduled`, `active`, `applied` (an extension that was added to
        /// its activation), `denied`, `cancelled`, `timed_out`, `expired`, `deactivated` or
        /// `revoked`.
        pub state: String,
        pub duration_seconds: i64,
        pub justification: Option<String>,
        pub ticket: Option<String>,
        pub approvals_required: i64,
        pub approvals: Vec<String>,
        pub created_at: String,
        pub times_out_at: Option<String>,
        pub activated_at: Option<String>,
        pub ends_at: Option<String>,
        pub closed_at: Option<String>,
        pub closed_by: Option<String>,
        pub close_reason: Option<String>,
        /// A scheduled activation's start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub starts_at: Option<String>,
        /// For an extension: the id of the activation it extends (its `duration_seconds` is the
        /// extra time asked for, its `ends_at` the end it gives).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub extends: Option<String>,
    }
}

api_type! {
    /// `POST /api/v1/requests/{id}/approve|deny|cancel|deactivate|revoke`.
    #[derive(Default)]
    pub struct DecisionRequest {
        #[serde(default)]
        pub reason: Option<String>,
    }
}

api_type! {
    /// An active role of the caller, for `whoami`.
    pub struct ActiveRoleView {
        pub role: String,
        pub scope: String,
        /// Absent: permanent.
        pub ends_at: Option<String>,
        pub seconds_left: Option<i64>,
        /// `assignment:ID` or `request:ID`.
        pub source: String,
    }
}
