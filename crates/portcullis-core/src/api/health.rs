//! Liveness, readiness and the tenant's setup state.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ready {
    pub status: String,
    pub database: String,
    pub backend: String,
    pub schema_version: i64,
    /// Whether the tenant is fully set up (absent before the tenant exists).
    #[serde(default)]
    pub tenant: Option<TenantReadiness>,
}

/// The tenant's setup state: it stays `setup` until at least two usable break-glass accounts
/// exist; drills older than the configured age are listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantReadiness {
    /// `setup` or `ready`.
    pub state: String,
    /// Usable break-glass accounts (enabled, with their credential and Global Administrator).
    pub breakglass_accounts: i64,
    pub breakglass_required: i64,
    /// How many break-glass accounts' last drill (or creation) is older than the drill age
    /// (their names: `GET /api/v1/breakglass`, for holders of `breakglass.read`).
    pub drills_overdue: i64,
    /// What to do, for people (absent when nothing is to do).
    #[serde(default)]
    pub notice: Option<String>,
}
