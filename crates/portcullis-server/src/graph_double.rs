//! A Microsoft Graph and Entra token endpoint test double (feature `testing`, never in a
//! release build), for the `msgraph` target connector's tests and benchmarks: Microsoft Graph
//! cannot be reached from the build machines, so this serves the few documented endpoints the
//! connector uses on `http://127.0.0.1:PORT`, with the same paths, JSON shapes, status codes and
//! error codes, and lets a test change the tenant under the connector's feet.
//!
//! What it imitates (both the login base and the Graph base are [`GraphDouble::base`]):
//!
//! - The Microsoft identity platform token endpoint, client credentials flow
//!   (`POST {base}/{tenant}/oauth2/v2.0/token`), with a client secret or a certificate client
//!   assertion; see "Microsoft identity platform and the OAuth 2.0 client credentials flow"
//!   (<https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow>)
//!   and "Microsoft identity platform application authentication certificate credentials"
//!   (<https://learn.microsoft.com/en-us/entra/identity-platform/certificate-credentials>).
//!   The assertion must be RS256 or PS256, carry `x5t#S256` = base64url(SHA-256 of the
//!   certificate's DER) of the registered certificate, `aud` = the token endpoint,
//!   `iss` = `sub` = the client id, an unexpired `exp` and a `jti`. Errors have Entra's shape
//!   (`error`, `error_description` starting with `AADSTSnnnn:`, `error_codes`, `timestamp`,
//!   `trace_id`, `correlation_id`, `error_uri`) and its codes: 90002 unknown tenant, 700016
//!   unknown client, 70011 invalid scope, 7000215 invalid secret, 7000218 no credential,
//!   700027 certificate not registered or bad signature, 50013 wrong audience or expired
//!   assertion, 700021 `iss`/`sub` not the client id, 50027 malformed assertion, 70003
//!   unsupported grant type. See "Microsoft Entra authentication and authorization error codes"
//!   (<https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes>).
//!   The access token is a JWT signed by the double (HS256, a random key per double) with
//!   `aud` = `{base}`, `tid`, `appid`, `roles` and `exp` (one hour).
//! - Microsoft Graph v1.0 under `{base}/v1.0/`: every call needs `Authorization: Bearer` with an
//!   unexpired token from this double (else 401 `InvalidAuthenticationToken`), and errors always
//!   have Graph's shape `{"error":{"code","message","innerError":{"date","request-id",
//!   "client-request-id"}}}`; see "Microsoft Graph error responses and resource types"
//!   (<https://learn.microsoft.com/en-us/graph/errors>). Answers carry `request-id` and
//!   `client-request-id` headers.
//!   - `GET /users/{id | userPrincipalName}` ("Get user",
//!     <https://learn.microsoft.com/en-us/graph/api/user-get>);
//!   - `GET /servicePrincipals/{id}` ("Get servicePrincipal",
//!     <https://learn.microsoft.com/en-us/graph/api/serviceprincipal-get>);
//!   - `POST`, `GET` (with `$filter` on `principalId`, `roleDefinitionId`, `directoryScopeId`,
//!     `eq` joined by `and`, and paging by `@odata.nextLink` with a `$skiptoken`),
//!     `GET /{id}` and `DELETE /{id}` on `/roleManagement/directory/roleAssignments`
//!     ("Create unifiedRoleAssignment",
//!     <https://learn.microsoft.com/en-us/graph/api/rbacapplication-post-roleassignments>;
//!     "List unifiedRoleAssignments",
//!     <https://learn.microsoft.com/en-us/graph/api/rbacapplication-list-roleassignments>;
//!     "Delete unifiedRoleAssignment",
//!     <https://learn.microsoft.com/en-us/graph/api/unifiedroleassignment-delete>), and
//!     `GET /roleManagement/directory/roleDefinitions` for the built-in templates it knows
//!     ("List roleDefinitions",
//!     <https://learn.microsoft.com/en-us/graph/api/rbacapplication-list-roledefinitions>;
//!     "Microsoft Entra built-in roles",
//!     <https://learn.microsoft.com/en-us/entra/identity/role-based-access-control/permissions-reference>).
//!     An identical assignment answers 400 `Request_BadRequest` "A conflicting object with one
//!     or more of the specified property values is present in the directory.", as Graph does.
//!     Ids are Graph's: base64url(role definition GUID ‖ principal GUID, little-endian GUID
//!     bytes) + `-1` for the tenant scope `/`.
//!   - Under `{base}/beta/` (which answers the v1.0 paths above too), the Exchange Online RBAC
//!     provider: `POST`, `GET` (the same `$filter` and paging), `GET /{id}` and `DELETE /{id}`
//!     on `/roleManagement/exchange/roleAssignments` ("Create unifiedRoleAssignment", Exchange
//!     Online provider,
//!     <https://learn.microsoft.com/en-us/graph/api/unifiedrbacapplication-post-roleassignments?view=graph-rest-beta>;
//!     "List unifiedRoleAssignments",
//!     <https://learn.microsoft.com/en-us/graph/api/rbacapplication-list-roleassignments?view=graph-rest-beta>;
//!     "Delete unifiedRoleAssignment",
//!     <https://learn.microsoft.com/en-us/graph/api/unifiedroleassignment-delete?view=graph-rest-beta>).
//!     `principalId` is `/Users/{id}` of a known user (else 400 `Request_BadRequest`), the role
//!     definition one of the tenant's Exchange role definitions the double knows
//!     ([`EXCHANGE_ORGANIZATION_MANAGEMENT`], [`EXCHANGE_RECIPIENT_MANAGEMENT`], more with
//!     [`GraphDouble::add_exchange_role_definition`]), `directoryScopeId` `/` or
//!     `/AdministrativeUnits|Groups|Users/{id}`; no `@odata.type` is needed; ids are GUIDs and
//!     answers carry `appScopeId: null`. It needs `RoleManagement.ReadWrite.Exchange` (reading:
//!     also `RoleManagement.Read.Exchange` or `RoleManagement.Read.All`); on `/v1.0/` the
//!     `exchange` segment is unknown (400 `BadRequest`).
//!   - `GET /auditLogs/signIns` with `$filter` (`createdDateTime` `ge`/`gt`/`le`/`lt`/`eq`,
//!     `userPrincipalName`/`userId`/`appId`/`appDisplayName`/`ipAddress` `eq`,
//!     `status/errorCode eq n`, `and`/`or`/parentheses in any order), `$top` and paging; newest
//!     first ("List signIns", <https://learn.microsoft.com/en-us/graph/api/signin-list>;
//!     "signIn resource type", <https://learn.microsoft.com/en-us/graph/api/resources/signin>).
//!     Without Microsoft Entra ID P1 it answers 403
//!     `Authentication_RequestFromNonPremiumTenantOrB2CTenant`.
//!   - `GET /identity/conditionalAccess/policies` ("List policies",
//!     <https://learn.microsoft.com/en-us/graph/api/conditionalaccessroot-list-policies>);
//!   - `GET /groups/{id}/transitiveMembers` ("List group transitive members",
//!     <https://learn.microsoft.com/en-us/graph/api/group-list-transitivemembers>), nested
//!     groups expanded, not paged.
//!
//!   Each endpoint checks the app's *current* application permissions (see "Microsoft Graph
//!   permissions reference", <https://learn.microsoft.com/en-us/graph/permissions-reference>)
//!   and answers 403 `Authorization_RequestDenied` "Insufficient privileges to complete the
//!   operation." without one. Throttling ("Microsoft Graph throttling guidance",
//!   <https://learn.microsoft.com/en-us/graph/throttling>) answers 429 `TooManyRequests` with
//!   `Retry-After`. Unknown segments answer 400 `BadRequest` "Resource not found for the segment
//!   '…'.", a known path with another method 405.
//!
//! Deliberate differences from the real service: permissions are read from the double's state
//! on every call, not from the token's `roles` (so removing one takes effect at once); a
//! throttled call is counted after authentication; the replication delay only affects `DELETE`
//! of assignments created through the API; assignments added "in the portal" are replicated at
//! once; paging tokens are the double's own; sign-in times are whole seconds; only `x5t#S256`
//! identifies the certificate (a SHA-1 `x5t` alone is refused with 700027); `jti` must be
//! present but replays are not refused.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use rand::RngCore as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Lifetime of the access tokens the double issues, in seconds (Entra's `expires_in`).
const TOKEN_LIFETIME_SECS: i64 = 3599;

/// The built-in directory role templates the double knows (id, display name).
const ROLE_TEMPLATES: &[(&str, &str)] = &[
    (
        "62e90394-69f5-4237-9190-012177145e10",
        "Global Administrator",
    ),
    (
        "29232cdf-9323-42fd-ade2-1d097af3e4de",
        "Exchange Administrator",
    ),
    (
        "e8611ab8-c189-46e8-94e1-60213ab1f814",
        "Privileged Role Administrator",
    ),
    ("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator"),
    ("5d6b6bb7-de71-4623-b4af-96380a352509", "Security Reader"),
    (
        "194ae4cb-b126-40b2-bd5b-6091b380977d",
        "Security Administrator",
    ),
    ("f2ef992c-3afb-46b9-b7cf-a126ee74c451", "Global Reader"),
    (
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
        "Application Administrator",
    ),
    (
        "158c047a-c907-4556-b7ef-446551a6b5f7",
        "Cloud Application Administrator",
    ),
    (
        "729827e3-9c14-49f7-bb1b-9608f156bbb8",
        "Helpdesk Administrator",
    ),
    (
        "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
        "SharePoint Administrator",
    ),
    (
        "69091246-20e8-4a56-aa4d-066075b2a7a8",
        "Teams Administrator",
    ),
    (
        "3a2c62db-5318-420d-8d74-23affee5d9d5",
        "Intune Administrator",
    ),
    (
        "c4e39bd9-1100-46d3-8c65-fb160da0071f",
        "Authentication Administrator",
    ),
    (
        "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
        "Privileged Authentication Administrator",
    ),
];

const USER_READ: &[&str] = &[
    "User.Read.All",
    "User.ReadBasic.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "RoleManagement.ReadWrite.Directory",
];
const SP_READ: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "RoleManagement.ReadWrite.Directory",
];
const ROLES_READ: &[&str] = &[
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
    "RoleManagement.ReadWrite.Directory",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const ROLES_WRITE: &[&str] = &["RoleManagement.ReadWrite.Directory"];
const EXCHANGE_READ: &[&str] = &[
    "RoleManagement.Read.Exchange",
    "RoleManagement.Read.All",
    "RoleManagement.ReadWrite.Exchange",
];
const EXCHANGE_WRITE: &[&str] = &["RoleManagement.ReadWrite.Exchange"];

/// The Exchange Online role definition "Organization Management" in the double's tenant (role
/// definition ids are the tenant's own, not templates).
pub const EXCHANGE_ORGANIZATION_MANAGEMENT: &str = "c0a1e5f2-7d3b-4e19-9a6c-2b8f4d7e1a01";
/// The Exchange Online role definition "Recipient Management" in the double's tenant.
pub const EXCHANGE_RECIPIENT_MANAGEMENT: &str = "c0a1e5f2-7d3b-4e19-9a6c-2b8f4d7e1a02";

/// Which role-assignment collection a request is about.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Coll {
    /// `/v1.0/roleManagement/directory/roleAssignments`.
    Directory,
    /// `/beta/roleManagement/exchange/roleAssignments`.
    Exchange,
}

impl Coll {
    /// The collection's path after the version.
    fn path(self) -> &'static str {
        match self {
            Coll::Directory => "roleManagement/directory/roleAssignments",
            Coll::Exchange => "roleManagement/exchange/roleAssignments",
        }
    }

    /// The API version its links are written with.
    fn version(self) -> &'static str {
        match self {
            Coll::Directory => "v1.0",
            Coll::Exchange => "beta",
        }
    }

    fn read(self) -> &'static [&'static str] {
        match self {
            Coll::Directory => ROLES_READ,
            Coll::Exchange => EXCHANGE_READ,
        }
    }

    fn write(self) -> &'static [&'static str] {
        match self {
            Coll::Directory => ROLES_WRITE,
            Coll::Exchange => EXCHANGE_WRITE,
        }
    }
}
const SIGNINS_READ: &[&str] = &["AuditLog.Read.All"];
const CA_READ: &[&str] = &[
    "Policy.Read.All",
    "Policy.Read.ConditionalAccess",
    "Policy.ReadWrite.ConditionalAccess",
];
const MEMBERS_READ: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// The application registration the double accepts at its token endpoint.
#[derive(Debug, Clone, Default)]
pub struct AppCredential {
    /// The application (client) id.
    pub client_id: String,
    /// The client secret's value, if the app has one.
    pub client_secret: Option<String>,
    /// SHA-256 of the certificate's DER (`x5t#S256` is its base64url, no padding).
    pub cert_sha256: Option<[u8; 32]>,
    /// The certificate's RSA public key, DER: either a SubjectPublicKeyInfo or a PKCS#1
    /// RSAPublicKey (both are accepted), used to verify RS256 / PS256 client assertions.
    pub public_key_der: Option<Vec<u8>>,
}

/// A directory (or Exchange Online) role assignment as the double holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// Graph's opaque id (`base64url(role ‖ principal)-1` at the tenant scope; a GUID for an
    /// Exchange assignment).
    pub id: String,
    /// The user's, service principal's or group's object id (lower case); for an Exchange
    /// assignment, as Graph writes it: `/Users/{id}`, `/Groups/{id}`, `/ServicePrincipals/{id}`.
    pub principal_id: String,
    /// The role template id (lower case); for Exchange, the tenant's role definition id.
    pub role_definition_id: String,
    /// `/` for the whole tenant, or e.g. `/administrativeUnits/{id}`.
    pub directory_scope_id: String,
}

/// One request the double received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path with the query, as received (still percent-encoded).
    pub path: String,
    /// When it arrived.
    pub at: Instant,
    /// The status answered.
    pub status: u16,
}

struct Principal {
    id: String,
    upn: String,
    display_name: String,
    kind: PrincipalKind,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum PrincipalKind {
    User,
    ServicePrincipal,
    Group,
}

struct StoredAssignment {
    seq: u64,
    a: RoleAssignment,
    /// `None` for an assignment that has replicated everywhere (made in the portal).
    created: Option<Instant>,
}

struct SignIn {
    seq: u64,
    id: String,
    created: OffsetDateTime,
    upn: String,
    user_id: String,
    user_display_name: String,
    app_id: String,
    app: String,
    ip: String,
    error_code: i64,
    failure_reason: String,
}

struct Group {
    id: String,
    members: Vec<String>,
}

struct Inner {
    permissions: Vec<String>,
    principals: Vec<Principal>,
    groups: Vec<Group>,
    assignments: Vec<StoredAssignment>,
    exchange_assignments: Vec<StoredAssignment>,
    /// The tenant's Exchange Online role definitions (id, display name).
    exchange_roles: Vec<(String, String)>,
    sign_ins: Vec<SignIn>,
    next_seq: u64,
    throttle: usize,
    retry_after: u64,
    replication_delay: Duration,
    page_size: usize,
    requests: Vec<Recorded>,
    p1: bool,
    ca_policies: Vec<Value>,
}

struct Shared {
    tenant: String,
    base: String,
    app: AppCredential,
    token_key: Vec<u8>,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A Graph test double serving on `127.0.0.1` until dropped.
pub struct GraphDouble {
    /// `http://127.0.0.1:PORT`: both the login base and the Graph base.
    pub base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GraphDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GraphDouble {
    /// Starts a double for `tenant` (a GUID or domain, as the connector sends it) with one app
    /// registration holding the application `permissions`. Microsoft Entra ID P1 is on.
    pub async fn start(tenant: &str, app: AppCredential, permissions: &[&str]) -> GraphDouble {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Graph double on 127.0.0.1:0");
        let addr = listener.local_addr().expect("the Graph double's address");
        let base = format!("http://{addr}");
        let mut token_key = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut token_key);
        let shared = Arc::new(Shared {
            tenant: tenant.to_owned(),
            base: base.clone(),
            app,
            token_key,
            inner: Mutex::new(Inner {
                permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
                principals: Vec::new(),
                groups: Vec::new(),
                assignments: Vec::new(),
                exchange_assignments: Vec::new(),
                exchange_roles: vec![
                    (
                        EXCHANGE_ORGANIZATION_MANAGEMENT.to_owned(),
                        "Organization Management".to_owned(),
                    ),
                    (
                        EXCHANGE_RECIPIENT_MANAGEMENT.to_owned(),
                        "Recipient Management".to_owned(),
                    ),
                ],
                sign_ins: Vec::new(),
                next_seq: 1,
                throttle: 0,
                retry_after: 0,
                replication_delay: Duration::ZERO,
                page_size: 100,
                requests: Vec::new(),
                p1: true,
                ca_policies: Vec::new(),
            }),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::warn!(error = %e, "the Graph double stopped");
            }
        });
        GraphDouble { base, shared, task }
    }

    /// Adds a user (display name = the part of `upn` before `@`); returns its object id.
    pub fn add_user(&self, upn: &str) -> String {
        let display = upn.split('@').next().unwrap_or(upn).to_owned();
        self.add_principal(upn, &display, PrincipalKind::User)
    }

    /// Adds a service principal; returns its object id.
    pub fn add_service_principal(&self, display_name: &str) -> String {
        self.add_principal("", display_name, PrincipalKind::ServicePrincipal)
    }

    fn add_principal(&self, upn: &str, display_name: &str, kind: PrincipalKind) -> String {
        let id = new_guid();
        self.shared.lock().principals.push(Principal {
            id: id.clone(),
            upn: upn.to_owned(),
            display_name: display_name.to_owned(),
            kind,
        });
        id
    }

    /// Adds a security group with these member object ids (users, service principals or
    /// groups); returns its object id. A group can be assigned roles too.
    pub fn add_group(&self, name: &str, member_ids: &[&str]) -> String {
        let id = self.add_principal("", name, PrincipalKind::Group);
        self.shared.lock().groups.push(Group {
            id: id.clone(),
            members: member_ids.iter().map(|m| m.to_ascii_lowercase()).collect(),
        });
        id
    }

    /// Replaces the app's application permissions; checked on every call.
    pub fn set_permissions(&self, permissions: &[&str]) {
        self.shared.lock().permissions = permissions.iter().map(|p| (*p).to_owned()).collect();
    }

    /// The next `n` Graph calls (not token calls) answer 429 with `Retry-After: retry_after_secs`.
    pub fn throttle_next(&self, n: usize, retry_after_secs: u64) {
        let mut inner = self.shared.lock();
        inner.throttle = n;
        inner.retry_after = retry_after_secs;
    }

    /// For `d` after an assignment is created through the API, `DELETE` of it answers 404
    /// (it still appears in lists).
    pub fn set_replication_delay(&self, d: Duration) {
        self.shared.lock().replication_delay = d;
    }

    /// The largest page of a list (default 100).
    pub fn set_page_size(&self, n: usize) {
        self.shared.lock().page_size = n.max(1);
    }

    /// The directory role assignments now, oldest first.
    pub fn assignments(&self) -> Vec<RoleAssignment> {
        self.shared
            .lock()
            .assignments
            .iter()
            .map(|s| s.a.clone())
            .collect()
    }

    /// Adds an assignment made outside Portcullis (already replicated); returns its id.
    pub fn add_assignment_in_portal(
        &self,
        principal_id: &str,
        role_definition_id: &str,
        scope: &str,
    ) -> String {
        let mut inner = self.shared.lock();
        let a = RoleAssignment {
            id: assignment_id(role_definition_id, principal_id, scope),
            principal_id: principal_id.to_ascii_lowercase(),
            role_definition_id: role_definition_id.to_ascii_lowercase(),
            directory_scope_id: scope.to_owned(),
        };
        let id = a.id.clone();
        let seq = inner.seq();
        inner.assignments.push(StoredAssignment {
            seq,
            a,
            created: None,
        });
        id
    }

    /// Adds an Exchange Online role definition to the tenant; returns its id.
    pub fn add_exchange_role_definition(&self, display_name: &str) -> String {
        let id = new_guid();
        self.shared
            .lock()
            .exchange_roles
            .push((id.clone(), display_name.to_owned()));
        id
    }

    /// The Exchange Online role assignments now, oldest first (principals as Graph writes
    /// them, `/Users/{id}`).
    pub fn exchange_assignments(&self) -> Vec<RoleAssignment> {
        self.shared
            .lock()
            .exchange_assignments
            .iter()
            .map(|s| s.a.clone())
            .collect()
    }

    /// Adds an Exchange Online role assignment made outside Portcullis (in the Exchange admin
    /// center or PowerShell; already replicated) for `principal_id` as Graph writes it
    /// (`/Users/{id}`, `/Groups/{id}`, …), organisation-wide; returns its id.
    pub fn add_exchange_assignment_in_portal(
        &self,
        principal_id: &str,
        role_definition_id: &str,
    ) -> String {
        let mut inner = self.shared.lock();
        let id = new_guid();
        let seq = inner.seq();
        inner.exchange_assignments.push(StoredAssignment {
            seq,
            a: RoleAssignment {
                id: id.clone(),
                principal_id: principal_id.to_owned(),
                role_definition_id: role_definition_id.to_ascii_lowercase(),
                directory_scope_id: "/".to_owned(),
            },
            created: None,
        });
        id
    }

    /// Every request received so far, in the order answered.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// Adds a sign-in log record created now (whole seconds); returns its id. `error_code` 0 is
    /// a success.
    pub fn add_sign_in(
        &self,
        upn: &str,
        ip: &str,
        app: &str,
        error_code: i64,
        failure_reason: &str,
    ) -> String {
        let now = OffsetDateTime::now_utc();
        let created = now.replace_nanosecond(0).unwrap_or(now);
        let mut inner = self.shared.lock();
        let (user_id, user_display_name) = inner
            .principals
            .iter()
            .find(|p| p.kind == PrincipalKind::User && p.upn.eq_ignore_ascii_case(upn))
            .map(|p| (p.id.clone(), p.display_name.clone()))
            .unwrap_or_else(|| {
                (
                    guid_from_hash(upn),
                    upn.split('@').next().unwrap_or(upn).to_owned(),
                )
            });
        let id = new_guid();
        let seq = inner.seq();
        inner.sign_ins.push(SignIn {
            seq,
            id: id.clone(),
            created,
            upn: upn.to_owned(),
            user_id,
            user_display_name,
            app_id: guid_from_hash(app),
            app: app.to_owned(),
            ip: ip.to_owned(),
            error_code,
            failure_reason: failure_reason.to_owned(),
        });
        id
    }

    /// Whether the tenant has Microsoft Entra ID P1 (needed for the sign-in logs).
    pub fn set_p1(&self, has_p1: bool) {
        self.shared.lock().p1 = has_p1;
    }

    /// The conditional access policies `GET /identity/conditionalAccess/policies` answers,
    /// as Graph's `conditionalAccessPolicy` JSON.
    pub fn set_ca_policies(&self, policies: Vec<Value>) {
        self.shared.lock().ca_policies = policies;
    }
}

impl Inner {
    fn seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    fn has_any(&self, wanted: &[&str]) -> bool {
        self.permissions
            .iter()
            .any(|p| wanted.iter().any(|w| p.eq_ignore_ascii_case(w)))
    }

    fn coll(&self, c: Coll) -> &Vec<StoredAssignment> {
        match c {
            Coll::Directory => &self.assignments,
            Coll::Exchange => &self.exchange_assignments,
        }
    }

    fn coll_mut(&mut self, c: Coll) -> &mut Vec<StoredAssignment> {
        match c {
            Coll::Directory => &mut self.assignments,
            Coll::Exchange => &mut self.exchange_assignments,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn new_guid() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format_guid(&b)
}

fn guid_from_hash(s: &str) -> String {
    let h = Sha256::digest(s.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    format_guid(&b)
}

fn format_guid(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A GUID's bytes in Microsoft's mixed-endian layout, if `s` is a GUID.
fn guid_bytes(s: &str) -> Option<[u8; 16]> {
    let hexs: String = s.chars().filter(|c| *c != '-').collect();
    if hexs.len() != 32 || s.len() != 36 {
        return None;
    }
    let raw = hex::decode(hexs).ok()?;
    let mut b = [0u8; 16];
    b[0..4].copy_from_slice(&[raw[3], raw[2], raw[1], raw[0]]);
    b[4..6].copy_from_slice(&[raw[5], raw[4]]);
    b[6..8].copy_from_slice(&[raw[7], raw[6]]);
    b[8..16].copy_from_slice(&raw[8..16]);
    Some(b)
}

/// Graph's id for a directory role assignment: base64url(role definition ‖ principal) and a
/// suffix (`-1` for the tenant scope).
fn assignment_id(role_definition_id: &str, principal_id: &str, scope: &str) -> String {
    let mut bytes = Vec::with_capacity(32);
    match (guid_bytes(role_definition_id), guid_bytes(principal_id)) {
        (Some(r), Some(p)) => {
            bytes.extend_from_slice(&r);
            bytes.extend_from_slice(&p);
        }
        _ => {
            let mut r = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut r);
            bytes.extend_from_slice(&r);
        }
    }
    let suffix = if scope == "/" {
        "1".to_owned()
    } else {
        URL_SAFE_NO_PAD.encode(&Sha256::digest(scope.as_bytes())[..9])
    };
    format!("{}-{suffix}", URL_SAFE_NO_PAD.encode(bytes))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (
                char::from(bytes[i + 1]).to_digit(16),
                char::from(bytes[i + 2]).to_digit(16),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query value the way Graph writes its `nextLink`s (spaces as `%20`).
fn encode_query_value(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

const GRAPH_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// Per-request context for Graph answers.
struct Ctx {
    request_id: String,
    client_request_id: String,
}

impl Ctx {
    fn json(&self, status: StatusCode, body: &Value) -> Response {
        let mut resp = (status, body.to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(GRAPH_CONTENT_TYPE),
        );
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            h.insert("request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.client_request_id) {
            h.insert("client-request-id", v);
        }
        resp
    }

    fn error(&self, status: StatusCode, code: &str, message: &str) -> Response {
        let date = OffsetDateTime::now_utc();
        let date = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            date.year(),
            u8::from(date.month()),
            date.day(),
            date.hour(),
            date.minute(),
            date.second()
        );
        self.json(
            status,
            &json!({"error": {"code": code, "message": message, "innerError": {
                "date": date,
                "request-id": self.request_id,
                "client-request-id": self.client_request_id,
            }}}),
        )
    }

    fn forbidden(&self) -> Response {
        self.error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    fn not_found(&self, what: &str) -> Response {
        self.error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    fn bad_segment(&self, segment: &str) -> Response {
        self.error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Resource not found for the segment '{segment}'."),
        )
    }

    fn method_not_allowed(&self) -> Response {
        self.error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Dispatch.

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let path = uri.path().to_owned();
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| path.clone());
    let version = if path.starts_with("/v1.0/") {
        Some(false)
    } else if path.starts_with("/beta/") {
        Some(true)
    } else {
        None
    };
    let resp = if let Some(beta) = version {
        let rest = path.split_once('/').map_or("", |(_, r)| r);
        let rest = rest.split_once('/').map_or("", |(_, r)| r);
        graph(
            &shared,
            &method,
            beta,
            rest,
            uri.query().unwrap_or(""),
            &headers,
            &body,
        )
    } else {
        token(&shared, &method, &path, &body)
    };
    shared.lock().requests.push(Recorded {
        method: method.to_string(),
        path: path_and_query,
        at,
        status: resp.status().as_u16(),
    });
    resp
}

// ---------------------------------------------------------------------------------------------
// The token endpoint.

fn entra_error(status: StatusCode, error: &str, code: u32, message: &str) -> Response {
    let now = OffsetDateTime::now_utc();
    let trace_id = new_guid();
    let correlation_id = new_guid();
    let ts = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {message} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {ts}"
        ),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn token(shared: &Shared, method: &Method, path: &str, body: &[u8]) -> Response {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let [tenant, "oauth2", "v2.0", "token"] = segments.as_slice() else {
        return (StatusCode::NOT_FOUND, "").into_response();
    };
    if method != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "").into_response();
    }
    if !tenant.eq_ignore_ascii_case(&shared.tenant) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| {
        form.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
    };
    match get("grant_type") {
        Some("client_credentials") => {}
        None => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            );
        }
        Some(other) => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            );
        }
    }
    let client_id = get("client_id").unwrap_or("");
    if client_id.is_empty() {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    }
    if !client_id.eq_ignore_ascii_case(&shared.app.client_id) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                shared.tenant
            ),
        );
    }
    let expected_scope = format!("{}/.default", shared.base);
    match get("scope") {
        None => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            );
        }
        Some(s) if s != expected_scope => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                70011,
                &format!(
                    "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {s} is not valid."
                ),
            );
        }
        Some(_) => {}
    }
    if let Some(secret) = get("client_secret") {
        let ok = shared
            .app
            .client_secret
            .as_deref()
            .is_some_and(|s| bool::from(subtle_eq(s.as_bytes(), secret.as_bytes())));
        if !ok {
            return entra_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    shared.app.client_id
                ),
            );
        }
    } else if let Some(assertion) = get("client_assertion") {
        if get("client_assertion_type")
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed: client_assertion_type must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
            );
        }
        if let Err(resp) = check_assertion(shared, assertion) {
            return *resp;
        }
    } else {
        return entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    }
    let now = now_unix();
    let roles = shared.lock().permissions.clone();
    let claims = json!({
        "aud": shared.base,
        "iss": format!("https://sts.windows.net/{}/", shared.tenant),
        "iat": now,
        "nbf": now,
        "exp": now + TOKEN_LIFETIME_SECS,
        "tid": shared.tenant,
        "appid": shared.app.client_id,
        "idtyp": "app",
        "roles": roles,
        "uti": new_guid(),
    });
    let Ok(access_token) = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&shared.token_key),
    ) else {
        return entra_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            90033,
            "A transient error has occurred. Please try again.",
        );
    };
    let mut resp = (
        StatusCode::OK,
        json!({
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECS,
            "ext_expires_in": TOKEN_LIFETIME_SECS,
            "access_token": access_token,
        })
        .to_string(),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn subtle_eq(a: &[u8], b: &[u8]) -> subtle::Choice {
    use subtle::ConstantTimeEq as _;
    if a.len() != b.len() {
        return subtle::Choice::from(0);
    }
    a.ct_eq(b)
}

fn check_assertion(shared: &Shared, assertion: &str) -> Result<(), Box<Response>> {
    let malformed = || {
        Box::new(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        ))
    };
    let not_registered = |thumb: &str| {
        Box::new(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            &format!(
                "Client assertion failed signature validation. The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumb}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]",
                shared.app.client_id
            ),
        ))
    };
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| malformed())?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(Box::new(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "Client assertion failed signature validation: the algorithm must be RS256 or PS256.",
        )));
    }
    let thumb = header
        .x5t_s256
        .clone()
        .or(header.x5t.clone())
        .unwrap_or_default();
    let registered = shared.app.cert_sha256.map(|h| URL_SAFE_NO_PAD.encode(h));
    let (Some(registered), Some(key_der)) = (registered, shared.app.public_key_der.as_deref())
    else {
        return Err(not_registered(&thumb));
    };
    if header.x5t_s256.as_deref() != Some(registered.as_str()) {
        return Err(not_registered(&thumb));
    }
    let audience = format!("{}/{}/oauth2/v2.0/token", shared.base, shared.tenant);
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience.as_str()]);
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    validation.leeway = 60;
    let data =
        jsonwebtoken::decode::<Value>(assertion, &DecodingKey::from_rsa_der(key_der), &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature
                | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat
                | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
                | jsonwebtoken::errors::ErrorKind::Provider(_)
                | jsonwebtoken::errors::ErrorKind::Signing(_) => Box::new(entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    700027,
                    "Client assertion failed signature validation.",
                )),
                jsonwebtoken::errors::ErrorKind::InvalidAudience => Box::new(entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    50013,
                    &format!(
                        "Assertion failed signature validation: the audience is not '{audience}'."
                    ),
                )),
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Box::new(entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    50013,
                    "Assertion is not within its valid time range: the token is expired.",
                )),
                _ => malformed(),
            })?;
    let claims = data.claims;
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    if !iss.eq_ignore_ascii_case(&shared.app.client_id)
        || !sub.eq_ignore_ascii_case(&shared.app.client_id)
    {
        return Err(Box::new(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        )));
    }
    if claims
        .get("jti")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(malformed());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Graph.

#[allow(clippy::too_many_arguments)]
fn graph(
    shared: &Shared,
    method: &Method,
    beta: bool,
    rest: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let ctx = Ctx {
        request_id: new_guid(),
        client_request_id: headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(new_guid),
    };
    if let Err(message) = check_bearer(shared, headers) {
        return ctx.error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        );
    }
    {
        let mut inner = shared.lock();
        if inner.throttle > 0 {
            inner.throttle -= 1;
            let mut resp = ctx.error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests",
            );
            if let Ok(v) = HeaderValue::from_str(&inner.retry_after.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let segments: Vec<String> = rest
        .trim_end_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = method == Method::GET;
    match segs.as_slice() {
        ["users", id] if get => get_user(shared, &ctx, id),
        ["users", _] => ctx.method_not_allowed(),
        ["servicePrincipals", id] if get => get_service_principal(shared, &ctx, id),
        ["servicePrincipals", _] => ctx.method_not_allowed(),
        ["roleManagement", "directory", "roleAssignments"] => match *method {
            Method::GET => list_assignments(shared, &ctx, Coll::Directory, &params),
            Method::POST => create_assignment(shared, &ctx, body),
            _ => ctx.method_not_allowed(),
        },
        ["roleManagement", "directory", "roleAssignments", id] => match *method {
            Method::GET => get_assignment(shared, &ctx, Coll::Directory, id),
            Method::DELETE => delete_assignment(shared, &ctx, Coll::Directory, id),
            _ => ctx.method_not_allowed(),
        },
        ["roleManagement", "exchange", "roleAssignments"] if beta => match *method {
            Method::GET => list_assignments(shared, &ctx, Coll::Exchange, &params),
            Method::POST => create_exchange_assignment(shared, &ctx, body),
            _ => ctx.method_not_allowed(),
        },
        ["roleManagement", "exchange", "roleAssignments", id] if beta => match *method {
            Method::GET => get_assignment(shared, &ctx, Coll::Exchange, id),
            Method::DELETE => delete_assignment(shared, &ctx, Coll::Exchange, id),
            _ => ctx.method_not_allowed(),
        },
        // The Exchange provider is beta only.
        ["roleManagement", "exchange", ..] => ctx.bad_segment("exchange"),
        ["roleManagement", "directory", "roleDefinitions"] if get => {
            list_role_definitions(shared, &ctx)
        }
        ["roleManagement", "directory", "roleDefinitions"] => ctx.method_not_allowed(),
        ["auditLogs", "signIns"] if get => list_sign_ins(shared, &ctx, &params),
        ["auditLogs", "signIns"] => ctx.method_not_allowed(),
        ["identity", "conditionalAccess", "policies"] if get => list_ca_policies(shared, &ctx),
        ["identity", "conditionalAccess", "policies"] => ctx.method_not_allowed(),
        ["groups", id, "transitiveMembers"] if get => transitive_members(shared, &ctx, id),
        ["groups", _, "transitiveMembers"] => ctx.method_not_allowed(),
        _ => {
            let known = [
                "users",
                "servicePrincipals",
                "roleManagement",
                "auditLogs",
                "identity",
                "groups",
            ];
            let first_unknown = match segs.first() {
                Some(s) if !known.contains(s) => *s,
                _ => segs.last().copied().unwrap_or(""),
            };
            ctx.bad_segment(first_unknown)
        }
    }
}

fn check_bearer(shared: &Shared, headers: &HeaderMap) -> Result<(), &'static str> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err("Access token is empty.");
    };
    let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    else {
        return Err("Access token is empty.");
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[shared.base.as_str()]);
    validation.leeway = 0;
    match jsonwebtoken::decode::<Value>(
        token.trim(),
        &DecodingKey::from_secret(&shared.token_key),
        &validation,
    ) {
        Ok(data) => {
            let tid = data.claims.get("tid").and_then(Value::as_str);
            if tid.is_some_and(|t| t.eq_ignore_ascii_case(&shared.tenant)) {
                Ok(())
            } else {
                Err("Access token validation failure. Invalid tenant.")
            }
        }
        Err(e) => match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                Err("Lifetime validation failed, the token is expired.")
            }
            jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                Err("Access token validation failure. Invalid audience.")
            }
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                Err("Access token validation failure. Invalid signature.")
            }
            _ => Err("IDX14100: JWT is not well formed."),
        },
    }
}

fn get_user(shared: &Shared, ctx: &Ctx, id: &str) -> Response {
    let inner = shared.lock();
    if !inner.has_any(USER_READ) {
        return ctx.forbidden();
    }
    let found = inner.principals.iter().find(|p| {
        p.kind == PrincipalKind::User
            && (p.id.eq_ignore_ascii_case(id) || p.upn.eq_ignore_ascii_case(id))
    });
    match found {
        Some(p) => ctx.json(
            StatusCode::OK,
            &json!({
                "@odata.context": format!("{}/v1.0/$metadata#users/$entity", shared.base),
                "id": p.id,
                "userPrincipalName": p.upn,
                "displayName": p.display_name,
            }),
        ),
        None => ctx.not_found(id),
    }
}

fn get_service_principal(shared: &Shared, ctx: &Ctx, id: &str) -> Response {
    let inner = shared.lock();
    if !inner.has_any(SP_READ) {
        return ctx.forbidden();
    }
    let found = inner
        .principals
        .iter()
        .find(|p| p.kind == PrincipalKind::ServicePrincipal && p.id.eq_ignore_ascii_case(id));
    match found {
        Some(p) => ctx.json(
            StatusCode::OK,
            &json!({
                "@odata.context": format!("{}/v1.0/$metadata#servicePrincipals/$entity", shared.base),
                "id": p.id,
                "appId": guid_from_hash(&p.id),
                "displayName": p.display_name,
            }),
        ),
        None => ctx.not_found(id),
    }
}

fn assignment_json(a: &RoleAssignment) -> Value {
    json!({
        "id": a.id,
        "principalId": a.principal_id,
        "roleDefinitionId": a.role_definition_id,
        "directoryScopeId": a.directory_scope_id,
    })
}

/// An assignment as `c`'s collection answers it (Exchange's carry `appScopeId`).
fn coll_json(c: Coll, a: &RoleAssignment) -> Value {
    let mut v = assignment_json(a);
    if c == Coll::Exchange {
        v["appScopeId"] = Value::Null;
    }
    v
}

/// `POST /beta/roleManagement/exchange/roleAssignments`.
fn create_exchange_assignment(shared: &Shared, ctx: &Ctx, body: &[u8]) -> Response {
    let mut inner = shared.lock();
    if !inner.has_any(EXCHANGE_WRITE) {
        return ctx.forbidden();
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        );
    };
    let field = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(principal_id), Some(role_definition_id)) =
        (field("principalId"), field("roleDefinitionId"))
    else {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Invalid value specified for property 'principalId' or 'roleDefinitionId' of resource 'UnifiedRoleAssignment'.",
        );
    };
    let Some(scope) = field("directoryScopeId") else {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Either 'directoryScopeId' or 'appScopeId' must be specified.",
        );
    };
    // `/Users/{id}` of a user the tenant has (a bare object id is not the Exchange form).
    let user = principal_id
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("/Users/"))
        .map(|_| &principal_id[7..])
        .and_then(|id| {
            inner
                .principals
                .iter()
                .find(|p| p.kind == PrincipalKind::User && p.id.eq_ignore_ascii_case(id))
        })
        .map(|p| p.id.clone());
    let Some(user) = user else {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            &format!(
                "Invalid value specified for property 'principalId' of resource 'UnifiedRoleAssignment': '{principal_id}' is not a principal of the form /Users/{{id}} in this organization."
            ),
        );
    };
    let role_definition_id = role_definition_id.to_ascii_lowercase();
    if !inner
        .exchange_roles
        .iter()
        .any(|(id, _)| *id == role_definition_id)
    {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            &format!("The role definition '{role_definition_id}' was not found or is invalid."),
        );
    }
    let scope_ok = scope == "/"
        || ["/AdministrativeUnits/", "/Groups/", "/Users/"]
            .iter()
            .any(|p| {
                scope
                    .get(..p.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(p))
                    && guid_bytes(&scope[p.len()..]).is_some()
            });
    if !scope_ok {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            &format!("Invalid value specified for property 'directoryScopeId': '{scope}'."),
        );
    }
    let principal_id = format!("/Users/{user}");
    if inner.exchange_assignments.iter().any(|s| {
        s.a.principal_id.eq_ignore_ascii_case(&principal_id)
            && s.a.role_definition_id == role_definition_id
            && s.a.directory_scope_id.eq_ignore_ascii_case(&scope)
    }) {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "A conflicting object with one or more of the specified property values is present in the directory.",
        );
    }
    let a = RoleAssignment {
        id: new_guid(),
        principal_id,
        role_definition_id,
        directory_scope_id: scope,
    };
    let seq = inner.seq();
    inner.exchange_assignments.push(StoredAssignment {
        seq,
        a: a.clone(),
        created: Some(Instant::now()),
    });
    let c = Coll::Exchange;
    let mut body = coll_json(c, &a);
    body["@odata.context"] = json!(format!(
        "{}/{}/$metadata#{}/$entity",
        shared.base,
        c.version(),
        c.path()
    ));
    let mut resp = ctx.json(StatusCode::CREATED, &body);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}/{}/{}/{}",
        shared.base,
        c.version(),
        c.path(),
        a.id
    )) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn create_assignment(shared: &Shared, ctx: &Ctx, body: &[u8]) -> Response {
    let mut inner = shared.lock();
    if !inner.has_any(ROLES_WRITE) {
        return ctx.forbidden();
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        );
    };
    if let Some(t) = obj.get("@odata.type")
        && t.as_str() != Some("#microsoft.graph.unifiedRoleAssignment")
    {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "A type named 'microsoft.graph.unifiedRoleAssignment' was expected for '@odata.type'.",
        );
    }
    let field = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(principal_id), Some(role_definition_id)) =
        (field("principalId"), field("roleDefinitionId"))
    else {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Invalid value specified for property 'principalId' or 'roleDefinitionId' of resource 'UnifiedRoleAssignment'.",
        );
    };
    let Some(scope) = field("directoryScopeId") else {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Either 'directoryScopeId' or 'appScopeId' must be specified.",
        );
    };
    let principal_id = principal_id.to_ascii_lowercase();
    let role_definition_id = role_definition_id.to_ascii_lowercase();
    if !ROLE_TEMPLATES
        .iter()
        .any(|(id, _)| *id == role_definition_id)
    {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            &format!("The role definition '{role_definition_id}' was not found or is invalid."),
        );
    }
    if !inner
        .principals
        .iter()
        .any(|p| p.id.eq_ignore_ascii_case(&principal_id))
    {
        return ctx.not_found(&principal_id);
    }
    if inner.assignments.iter().any(|s| {
        s.a.principal_id == principal_id
            && s.a.role_definition_id == role_definition_id
            && s.a.directory_scope_id == scope
    }) {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "A conflicting object with one or more of the specified property values is present in the directory.",
        );
    }
    let a = RoleAssignment {
        id: assignment_id(&role_definition_id, &principal_id, &scope),
        principal_id,
        role_definition_id,
        directory_scope_id: scope,
    };
    let seq = inner.seq();
    inner.assignments.push(StoredAssignment {
        seq,
        a: a.clone(),
        created: Some(Instant::now()),
    });
    let mut body = assignment_json(&a);
    body["@odata.context"] = json!(format!(
        "{}/v1.0/$metadata#roleManagement/directory/roleAssignments/$entity",
        shared.base
    ));
    let mut resp = ctx.json(StatusCode::CREATED, &body);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}/v1.0/roleManagement/directory/roleAssignments/{}",
        shared.base, a.id
    )) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn get_assignment(shared: &Shared, ctx: &Ctx, c: Coll, id: &str) -> Response {
    let inner = shared.lock();
    if !inner.has_any(c.read()) {
        return ctx.forbidden();
    }
    match inner.coll(c).iter().find(|s| s.a.id == id) {
        Some(s) => {
            let mut body = coll_json(c, &s.a);
            body["@odata.context"] = json!(format!(
                "{}/{}/$metadata#{}/$entity",
                shared.base,
                c.version(),
                c.path()
            ));
            ctx.json(StatusCode::OK, &body)
        }
        None => ctx.not_found(id),
    }
}

fn delete_assignment(shared: &Shared, ctx: &Ctx, c: Coll, id: &str) -> Response {
    let mut inner = shared.lock();
    if !inner.has_any(c.write()) {
        return ctx.forbidden();
    }
    let delay = inner.replication_delay;
    let Some(pos) = inner.coll(c).iter().position(|s| s.a.id == id) else {
        return ctx.not_found(id);
    };
    if inner.coll(c)[pos]
        .created
        .is_some_and(|t| t.elapsed() < delay)
    {
        return ctx.not_found(id);
    }
    inner.coll_mut(c).remove(pos);
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        resp.headers_mut().insert("request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.client_request_id) {
        resp.headers_mut().insert("client-request-id", v);
    }
    resp
}

fn list_role_definitions(shared: &Shared, ctx: &Ctx) -> Response {
    if !shared.lock().has_any(ROLES_READ) {
        return ctx.forbidden();
    }
    let value: Vec<Value> = ROLE_TEMPLATES
        .iter()
        .map(|(id, name)| {
            json!({"id": id, "templateId": id, "displayName": name, "isBuiltIn": true, "isEnabled": true})
        })
        .collect();
    ctx.json(
        StatusCode::OK,
        &json!({
            "@odata.context": format!("{}/v1.0/$metadata#roleManagement/directory/roleDefinitions", shared.base),
            "value": value,
        }),
    )
}

fn list_ca_policies(shared: &Shared, ctx: &Ctx) -> Response {
    let inner = shared.lock();
    if !inner.has_any(CA_READ) {
        return ctx.forbidden();
    }
    ctx.json(
        StatusCode::OK,
        &json!({
            "@odata.context": format!("{}/v1.0/$metadata#identity/conditionalAccess/policies", shared.base),
            "value": inner.ca_policies,
        }),
    )
}

fn transitive_members(shared: &Shared, ctx: &Ctx, id: &str) -> Response {
    let inner = shared.lock();
    if !inner.has_any(MEMBERS_READ) {
        return ctx.forbidden();
    }
    let id = id.to_ascii_lowercase();
    if !inner.groups.iter().any(|g| g.id == id) {
        return ctx.not_found(&id);
    }
    let mut seen: HashSet<String> = HashSet::from([id.clone()]);
    let mut stack = vec![id];
    let mut value = Vec::new();
    while let Some(gid) = stack.pop() {
        let Some(group) = inner.groups.iter().find(|g| g.id == gid) else {
            continue;
        };
        for m in &group.members {
            if !seen.insert(m.clone()) {
                continue;
            }
            let Some(p) = inner.principals.iter().find(|p| &p.id == m) else {
                continue;
            };
            value.push(match p.kind {
                PrincipalKind::User => json!({
                    "@odata.type": "#microsoft.graph.user",
                    "id": p.id,
                    "userPrincipalName": p.upn,
                    "displayName": p.display_name,
                }),
                PrincipalKind::ServicePrincipal => json!({
                    "@odata.type": "#microsoft.graph.servicePrincipal",
                    "id": p.id,
                    "displayName": p.display_name,
                }),
                PrincipalKind::Group => {
                    stack.push(p.id.clone());
                    json!({
                        "@odata.type": "#microsoft.graph.group",
                        "id": p.id,
                        "displayName": p.display_name,
                    })
                }
            });
        }
    }
    ctx.json(
        StatusCode::OK,
        &json!({
            "@odata.context": format!("{}/v1.0/$metadata#directoryObjects", shared.base),
            "value": value,
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Lists: $filter, $top, $skiptoken.

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The page size, the sequence number to continue after, and the `$filter`/`$top` part of the
/// next link.
struct Paging {
    size: usize,
    after: Option<u64>,
    carried: String,
}

fn paging(inner: &Inner, params: &[(String, String)]) -> Result<Paging, &'static str> {
    let mut size = inner.page_size;
    let mut carried = String::new();
    if let Some(f) = param(params, "$filter") {
        carried.push_str(&format!("$filter={}&", encode_query_value(f)));
    }
    if let Some(t) = param(params, "$top") {
        let top: usize = t.trim().parse().map_err(|_| "Invalid $top value.")?;
        if top == 0 {
            return Err("Invalid $top value.");
        }
        size = size.min(top);
        carried.push_str(&format!("$top={top}&"));
    }
    let after = match param(params, "$skiptoken") {
        None => None,
        Some(tok) => {
            let raw = URL_SAFE_NO_PAD
                .decode(tok)
                .map_err(|_| "The skip token is not valid.")?;
            let text = String::from_utf8(raw).map_err(|_| "The skip token is not valid.")?;
            let n = text
                .strip_prefix("seq:")
                .and_then(|n| n.parse().ok())
                .ok_or("The skip token is not valid.")?;
            Some(n)
        }
    };
    Ok(Paging {
        size,
        after,
        carried,
    })
}

/// The next page's link; `path` starts with the version (`v1.0/…`, `beta/…`).
fn next_link(base: &str, path: &str, carried: &str, last_seq: u64) -> String {
    let tok = URL_SAFE_NO_PAD.encode(format!("seq:{last_seq}"));
    format!("{base}/{path}?{carried}$skiptoken={tok}")
}

fn list_assignments(shared: &Shared, ctx: &Ctx, c: Coll, params: &[(String, String)]) -> Response {
    let inner = shared.lock();
    if !inner.has_any(c.read()) {
        return ctx.forbidden();
    }
    let filter = match supported_filter(params, &|c| match (
        c.field.as_str(),
        c.op.as_str(),
        &c.value,
    ) {
        ("principalId" | "roleDefinitionId" | "directoryScopeId", "eq", Lit::Str(_)) => Ok(true),
        _ => Ok(false),
    }) {
        Ok(f) => f,
        Err(m) => return ctx.error(StatusCode::BAD_REQUEST, "BadRequest", &m),
    };
    let p = match paging(&inner, params) {
        Ok(p) => p,
        Err(m) => return ctx.error(StatusCode::BAD_REQUEST, "BadRequest", m),
    };
    let mut matching = inner.coll(c).iter().filter(|s| {
        p.after.is_none_or(|a| s.seq > a)
            && filter.as_ref().is_none_or(|f| {
                f.eval(&|c| {
                    let Lit::Str(v) = &c.value else { return false };
                    let have = match c.field.as_str() {
                        "principalId" => &s.a.principal_id,
                        "roleDefinitionId" => &s.a.role_definition_id,
                        _ => &s.a.directory_scope_id,
                    };
                    have.eq_ignore_ascii_case(v)
                })
            })
    });
    let page: Vec<&StoredAssignment> = matching.by_ref().take(p.size).collect();
    let more = matching.next().is_some();
    let mut body = json!({
        "@odata.context": format!("{}/{}/$metadata#{}", shared.base, c.version(), c.path()),
        "value": page.iter().map(|s| coll_json(c, &s.a)).collect::<Vec<_>>(),
    });
    if more && let Some(last) = page.last() {
        body["@odata.nextLink"] = json!(next_link(
            &shared.base,
            &format!("{}/{}", c.version(), c.path()),
            &p.carried,
            last.seq
        ));
    }
    ctx.json(StatusCode::OK, &body)
}

fn list_sign_ins(shared: &Shared, ctx: &Ctx, params: &[(String, String)]) -> Response {
    let inner = shared.lock();
    if !inner.has_any(SIGNINS_READ) {
        return ctx.forbidden();
    }
    if !inner.p1 {
        return ctx.error(
            StatusCode::FORBIDDEN,
            "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
            "Neither tenant is B2C or tenant doesn't have premium license",
        );
    }
    let filter = match supported_filter(params, &|c| match (
        c.field.as_str(),
        c.op.as_str(),
        &c.value,
    ) {
        ("createdDateTime", "eq" | "ge" | "gt" | "le" | "lt", Lit::Raw(v)) => {
            OffsetDateTime::parse(v, &Rfc3339)
                .map(|_| true)
                .map_err(|_| format!("Invalid filter clause: '{v}' is not a DateTimeOffset."))
        }
        (
            "userPrincipalName" | "userId" | "appId" | "appDisplayName" | "ipAddress",
            "eq" | "ne",
            Lit::Str(_),
        ) => Ok(true),
        ("status/errorCode", "eq" | "ne", Lit::Raw(v)) if v.parse::<i64>().is_ok() => Ok(true),
        _ => Ok(false),
    }) {
        Ok(f) => f,
        Err(m) => return ctx.error(StatusCode::BAD_REQUEST, "BadRequest", &m),
    };
    let p = match paging(&inner, params) {
        Ok(p) => p,
        Err(m) => return ctx.error(StatusCode::BAD_REQUEST, "BadRequest", m),
    };
    let mut ordered: Vec<&SignIn> = inner.sign_ins.iter().collect();
    ordered.sort_by(|a, b| b.created.cmp(&a.created).then(b.seq.cmp(&a.seq)));
    // Sequence numbers grow with time, so "after" in newest-first order is a smaller seq.
    let mut matching = ordered.into_iter().filter(|s| {
        p.after.is_none_or(|a| s.seq < a)
            && filter
                .as_ref()
                .is_none_or(|f| f.eval(&|c| sign_in_matches(s, c)))
    });
    let page: Vec<&SignIn> = matching.by_ref().take(p.size).collect();
    let more = matching.next().is_some();
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#auditLogs/signIns", shared.base),
        "value": page.iter().map(|s| sign_in_json(s)).collect::<Vec<_>>(),
    });
    if more && let Some(last) = page.last() {
        body["@odata.nextLink"] = json!(next_link(
            &shared.base,
            "v1.0/auditLogs/signIns",
            &p.carried,
            last.seq
        ));
    }
    ctx.json(StatusCode::OK, &body)
}

fn sign_in_matches(s: &SignIn, c: &Clause) -> bool {
    match (c.field.as_str(), &c.value) {
        ("createdDateTime", Lit::Raw(v)) => {
            let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) else {
                return false;
            };
            match c.op.as_str() {
                "eq" => s.created == t,
                "ge" => s.created >= t,
                "gt" => s.created > t,
                "le" => s.created <= t,
                _ => s.created < t,
            }
        }
        ("status/errorCode", Lit::Raw(v)) => {
            let eq = v.parse::<i64>().is_ok_and(|n| n == s.error_code);
            if c.op == "ne" { !eq } else { eq }
        }
        (field, Lit::Str(v)) => {
            let have = match field {
                "userPrincipalName" => &s.upn,
                "userId" => &s.user_id,
                "appId" => &s.app_id,
                "appDisplayName" => &s.app,
                _ => &s.ip,
            };
            let eq = have.eq_ignore_ascii_case(v);
            if c.op == "ne" { !eq } else { eq }
        }
        _ => false,
    }
}

fn sign_in_json(s: &SignIn) -> Value {
    json!({
        "id": s.id,
        "createdDateTime": rfc3339(s.created),
        "userDisplayName": s.user_display_name,
        "userPrincipalName": s.upn,
        "userId": s.user_id,
        "appId": s.app_id,
        "appDisplayName": s.app,
        "ipAddress": s.ip,
        "clientAppUsed": "Browser",
        "correlationId": guid_from_hash(&s.id),
        "conditionalAccessStatus": "notApplied",
        "isInteractive": true,
        "riskDetail": "none",
        "riskLevelAggregated": "none",
        "riskLevelDuringSignIn": "none",
        "riskState": "none",
        "riskEventTypes_v2": [],
        "resourceDisplayName": "Microsoft Graph",
        "resourceId": "00000003-0000-0000-c000-000000000000",
        "status": {
            "errorCode": s.error_code,
            "failureReason": s.failure_reason,
            "additionalDetails": Value::Null,
        },
        "deviceDetail": {
            "deviceId": "",
            "displayName": "",
            "operatingSystem": "Windows 10",
            "browser": "Edge 120.0.0",
            "isCompliant": false,
            "isManaged": false,
            "trustType": "",
        },
        "location": {
            "city": "Redmond",
            "state": "Washington",
            "countryOrRegion": "US",
            "geoCoordinates": {"altitude": Value::Null, "latitude": 47.67, "longitude": -122.12},
        },
        "appliedConditionalAccessPolicies": [],
    })
}

// ---------------------------------------------------------------------------------------------
// A small OData `$filter` parser: comparisons joined by `and` / `or`, with parentheses.

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    /// A quoted string (`''` unescaped).
    Str(String),
    /// A bare literal: a date-time, a number.
    Raw(String),
}

#[derive(Debug, Clone)]
struct Clause {
    field: String,
    /// Lower case: `eq`, `ne`, `ge`, `gt`, `le`, `lt`.
    op: String,
    value: Lit,
}

#[derive(Debug)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Clause),
}

impl Expr {
    fn eval(&self, f: &dyn Fn(&Clause) -> bool) -> bool {
        match self {
            Expr::And(a, b) => a.eval(f) && b.eval(f),
            Expr::Or(a, b) => a.eval(f) || b.eval(f),
            Expr::Cmp(c) => f(c),
        }
    }

    fn check(&self, f: &dyn Fn(&Clause) -> Result<(), String>) -> Result<(), String> {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.check(f)?;
                b.check(f)
            }
            Expr::Cmp(c) => f(c),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Word(String),
    Str(String),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            out.push(Tok::Close);
            i += 1;
        } else if c == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("Invalid filter clause: unterminated string.".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        v.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        v.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(v));
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '(' | ')') {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        }
    }
    Ok(out)
}

/// The request's `$filter`, parsed, with every clause one `allowed` accepts (`Ok(false)`:
/// Graph's message for an unsupported clause; `Err`: a message of its own).
fn supported_filter(
    params: &[(String, String)],
    allowed: &dyn Fn(&Clause) -> Result<bool, String>,
) -> Result<Option<Expr>, String> {
    let Some(f) = param(params, "$filter") else {
        return Ok(None);
    };
    let e = parse_filter(f)?;
    e.check(&|c| {
        if allowed(c)? {
            Ok(())
        } else {
            Err(format!(
                "Invalid filter clause: '{} {}' is not supported.",
                c.field, c.op
            ))
        }
    })?;
    Ok(Some(e))
}

fn parse_filter(s: &str) -> Result<Expr, String> {
    let toks = tokenize(s)?;
    let mut pos = 0;
    let e = parse_or(&toks, &mut pos)?;
    if pos != toks.len() {
        return Err("Invalid filter clause: syntax error.".into());
    }
    Ok(e)
}

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

fn parse_or(toks: &[Tok], pos: &mut usize) -> Result<Expr, String> {
    let mut left = parse_and(toks, pos)?;
    while is_kw(toks.get(*pos), "or") {
        *pos += 1;
        let right = parse_and(toks, pos)?;
        left = Expr::Or(Box::new(left), Box::new(right));
    }
    Ok(left)
}

fn parse_and(toks: &[Tok], pos: &mut usize) -> Result<Expr, String> {
    let mut left = parse_atom(toks, pos)?;
    while is_kw(toks.get(*pos), "and") {
        *pos += 1;
        let right = parse_atom(toks, pos)?;
        left = Expr::And(Box::new(left), Box::new(right));
    }
    Ok(left)
}

fn parse_atom(toks: &[Tok], pos: &mut usize) -> Result<Expr, String> {
    let syntax = || "Invalid filter clause: syntax error.".to_owned();
    match toks.get(*pos) {
        Some(Tok::Open) => {
            *pos += 1;
            let e = parse_or(toks, pos)?;
            if toks.get(*pos) != Some(&Tok::Close) {
                return Err(syntax());
            }
            *pos += 1;
            Ok(e)
        }
        Some(Tok::Word(field)) => {
            let Some(Tok::Word(op)) = toks.get(*pos + 1) else {
                return Err(syntax());
            };
            let op = op.to_ascii_lowercase();
            if !matches!(op.as_str(), "eq" | "ne" | "ge" | "gt" | "le" | "lt") {
                return Err(format!(
                    "Invalid filter clause: unsupported operator '{op}'."
                ));
            }
            let value = match toks.get(*pos + 2) {
                Some(Tok::Str(v)) => Lit::Str(v.clone()),
                Some(Tok::Word(v)) => Lit::Raw(v.clone()),
                _ => return Err(syntax()),
            };
            *pos += 3;
            Ok(Expr::Cmp(Clause {
                field: field.clone(),
                op,
                value,
            }))
        }
        _ => Err(syntax()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData as _;

    const TENANT: &str = "8f0e8b5c-4a3c-4c8e-9d55-2f1a2b3c4d5e";
    const CLIENT: &str = "a1b2c3d4-0000-4000-8000-000000000001";
    const SECRET: &str = "s3cr3t~value";
    const GA: &str = "62e90394-69f5-4237-9190-012177145e10";
    const EXCHANGE: &str = "29232cdf-9323-42fd-ade2-1d097af3e4de";

    struct Cert {
        sha256: [u8; 32],
        spki: Vec<u8>,
        private_pem: String,
    }

    fn cert() -> Cert {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let c = rcgen::CertificateParams::new(vec!["portcullis-msgraph".to_owned()])
            .unwrap()
            .self_signed(&kp)
            .unwrap();
        Cert {
            sha256: Sha256::digest(c.der().as_ref()).into(),
            spki: kp.subject_public_key_info(),
            private_pem: kp.serialize_pem(),
        }
    }

    fn secret_app() -> AppCredential {
        AppCredential {
            client_id: CLIENT.into(),
            client_secret: Some(SECRET.into()),
            ..AppCredential::default()
        }
    }

    async fn post_token(d: &GraphDouble, form: &[(&str, &str)]) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/{TENANT}/oauth2/v2.0/token", d.base))
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn secret_token(d: &GraphDouble) -> String {
        let scope = format!("{}/.default", d.base);
        let (status, body) = post_token(
            d,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", &scope),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    fn assertion(pem: &str, x5t: &[u8; 32], aud: &str, exp_in: i64) -> String {
        assertion_alg(pem, x5t, aud, exp_in, Algorithm::RS256)
    }

    fn assertion_alg(pem: &str, x5t: &[u8; 32], aud: &str, exp_in: i64, alg: Algorithm) -> String {
        let mut header = jsonwebtoken::Header::new(alg);
        header.x5t_s256 = Some(URL_SAFE_NO_PAD.encode(x5t));
        let now = now_unix();
        let claims = json!({
            "aud": aud, "iss": CLIENT, "sub": CLIENT, "jti": new_guid(),
            "nbf": now, "iat": now, "exp": now + exp_in,
        });
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    async fn assertion_token(d: &GraphDouble, jwt: &str) -> (u16, Value) {
        let scope = format!("{}/.default", d.base);
        post_token(
            d,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", jwt),
                ("scope", &scope),
            ],
        )
        .await
    }

    async fn call(
        d: &GraphDouble,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, HeaderMap, Value) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}/v1.0/{path}", d.base)
        };
        let mut req = reqwest::Client::new().request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, headers, v)
    }

    fn code(v: &Value) -> &str {
        v["error"]["code"].as_str().unwrap_or("")
    }

    fn create_body(principal: &str, role: &str) -> Option<Value> {
        Some(json!({
            "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
            "principalId": principal, "roleDefinitionId": role, "directoryScopeId": "/",
        }))
    }

    #[tokio::test]
    async fn token_with_secret_and_its_errors() {
        let d = GraphDouble::start(TENANT, secret_app(), &["User.Read.All"]).await;
        let scope = format!("{}/.default", d.base);
        let (status, body) = post_token(
            &d,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", &scope),
            ],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3599);
        assert_eq!(body["ext_expires_in"], 3599);
        let token = body["access_token"].as_str().unwrap();
        let claims: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], d.base.as_str());
        assert_eq!(claims["tid"], TENANT);
        assert_eq!(claims["appid"], CLIENT);
        assert_eq!(claims["roles"], json!(["User.Read.All"]));

        let wrong_secret = post_token(
            &d,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", "nope"),
                ("scope", &scope),
            ],
        )
        .await;
        assert_eq!(wrong_secret.0, 401);
        assert_eq!(wrong_secret.1["error"], "invalid_client");
        assert_eq!(wrong_secret.1["error_codes"], json!([7000215]));
        assert!(
            wrong_secret.1["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS7000215: Invalid client secret provided.")
        );

        let bad_scope = post_token(
            &d,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
        .await;
        assert_eq!(
            (bad_scope.0, bad_scope.1["error_codes"].clone()),
            (400, json!([70011]))
        );
        let unknown_client = post_token(
            &d,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "00000000-0000-0000-0000-000000000000"),
                ("client_secret", SECRET),
                ("scope", &scope),
            ],
        )
        .await;
        assert_eq!(
            (unknown_client.0, unknown_client.1["error_codes"].clone()),
            (400, json!([700016]))
        );
        let r = reqwest::Client::new()
            .post(format!("{}/other-tenant/oauth2/v2.0/token", d.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", &scope),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error_codes"], json!([90002]));

        // The token opens Graph; no token or a forged one does not.
        let uid = d.add_user("alice@contoso.example");
        let (status, _, user) = call(
            &d,
            Method::GET,
            "users/alice@contoso.example?$select=id,userPrincipalName",
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{user}");
        assert_eq!(user["id"], uid.as_str());
        assert_eq!(user["userPrincipalName"], "alice@contoso.example");
        let (status, _, user) =
            call(&d, Method::GET, &format!("users/{uid}"), Some(token), None).await;
        assert_eq!((status, user["displayName"].as_str()), (200, Some("alice")));
        let (status, _, e) = call(
            &d,
            Method::GET,
            "users/bob@contoso.example",
            Some(token),
            None,
        )
        .await;
        assert_eq!((status, code(&e)), (404, "Request_ResourceNotFound"));
        assert!(e["error"]["innerError"]["request-id"].is_string());
        let (status, _, e) = call(&d, Method::GET, &format!("users/{uid}"), None, None).await;
        assert_eq!((status, code(&e)), (401, "InvalidAuthenticationToken"));
        let forged = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"not the double's key"),
        )
        .unwrap();
        let (status, _, e) = call(
            &d,
            Method::GET,
            &format!("users/{uid}"),
            Some(&forged),
            None,
        )
        .await;
        assert_eq!((status, code(&e)), (401, "InvalidAuthenticationToken"));
        let (status, _, e) = call(&d, Method::GET, "nonsense/thing", Some(token), None).await;
        assert_eq!((status, code(&e)), (400, "BadRequest"));
    }

    #[tokio::test]
    async fn token_with_certificate_assertion() {
        let c = cert();
        let other = cert();
        let app = AppCredential {
            client_id: CLIENT.into(),
            client_secret: None,
            cert_sha256: Some(c.sha256),
            public_key_der: Some(c.spki.clone()),
        };
        let d = GraphDouble::start(TENANT, app, &["User.Read.All"]).await;
        let aud = format!("{}/{TENANT}/oauth2/v2.0/token", d.base);

        let (status, body) =
            assertion_token(&d, &assertion(&c.private_pem, &c.sha256, &aud, 600)).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["access_token"].is_string());
        let ps = assertion_alg(&c.private_pem, &c.sha256, &aud, 600, Algorithm::PS256);
        assert_eq!(assertion_token(&d, &ps).await.0, 200);

        // A certificate that is not registered.
        let (status, body) =
            assertion_token(&d, &assertion(&c.private_pem, &other.sha256, &aud, 600)).await;
        assert_eq!(
            (status, body["error_codes"].clone()),
            (401, json!([700027]))
        );
        assert_eq!(body["error"], "invalid_client");
        // The registered thumbprint, signed by another key.
        let (status, body) =
            assertion_token(&d, &assertion(&other.private_pem, &c.sha256, &aud, 600)).await;
        assert_eq!(
            (status, body["error_codes"].clone()),
            (401, json!([700027]))
        );
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("Client assertion failed signature validation")
        );
        // Another audience.
        let wrong_aud = format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token");
        let (status, body) =
            assertion_token(&d, &assertion(&c.private_pem, &c.sha256, &wrong_aud, 600)).await;
        assert_eq!((status, body["error_codes"].clone()), (401, json!([50013])));
        // Expired.
        let (status, body) =
            assertion_token(&d, &assertion(&c.private_pem, &c.sha256, &aud, -600)).await;
        assert_eq!((status, body["error_codes"].clone()), (401, json!([50013])));
        // Garbage.
        let (status, body) = assertion_token(&d, "not.a.jwt").await;
        assert_eq!((status, body["error_codes"].clone()), (400, json!([50027])));
        // A PKCS#1 public key works too.
        let kp = rcgen::KeyPair::from_pem(&c.private_pem).unwrap();
        let app = AppCredential {
            client_id: CLIENT.into(),
            client_secret: None,
            cert_sha256: Some(c.sha256),
            public_key_der: Some(kp.der_bytes().to_vec()),
        };
        let d2 = GraphDouble::start(TENANT, app, &[]).await;
        let aud2 = format!("{}/{TENANT}/oauth2/v2.0/token", d2.base);
        let (status, body) =
            assertion_token(&d2, &assertion(&c.private_pem, &c.sha256, &aud2, 600)).await;
        assert_eq!(status, 200, "{body}");
        // No secret registered: a secret is refused.
        let scope = format!("{}/.default", d.base);
        let (status, body) = post_token(
            &d,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", "x"),
                ("scope", &scope),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error_codes"].clone()),
            (401, json!([7000215]))
        );
    }

    #[tokio::test]
    async fn create_list_page_delete_duplicate() {
        let d = GraphDouble::start(
            TENANT,
            secret_app(),
            &["RoleManagement.ReadWrite.Directory", "User.Read.All"],
        )
        .await;
        let token = secret_token(&d).await;
        let t = Some(token.as_str());
        let users: Vec<String> = (0..3)
            .map(|i| d.add_user(&format!("u{i}@contoso.example")))
            .collect();
        let sp = d.add_service_principal("deploy-bot");
        d.set_page_size(2);

        let mut ids = Vec::new();
        for u in &users {
            let (status, _, body) = call(
                &d,
                Method::POST,
                "roleManagement/directory/roleAssignments",
                t,
                create_body(u, GA),
            )
            .await;
            assert_eq!(status, 201, "{body}");
            assert_eq!(body["principalId"], u.as_str());
            assert_eq!(body["roleDefinitionId"], GA);
            assert_eq!(body["directoryScopeId"], "/");
            assert!(body["@odata.context"].is_string());
            let id = body["id"].as_str().unwrap().to_owned();
            assert!(id.ends_with("-1"), "{id}");
            ids.push(id);
        }
        let (status, _, _) = call(
            &d,
            Method::POST,
            "roleManagement/directory/roleAssignments",
            t,
            create_body(&users[0], EXCHANGE),
        )
        .await;
        assert_eq!(status, 201);
        let (status, _, _) = call(
            &d,
            Method::POST,
            "roleManagement/directory/roleAssignments",
            t,
            create_body(&sp, EXCHANGE),
        )
        .await;
        assert_eq!(status, 201);
        assert_eq!(d.assignments().len(), 5);

        // Duplicate, unknown role, unknown principal.
        let (status, _, e) = call(
            &d,
            Method::POST,
            "roleManagement/directory/roleAssignments",
            t,
            create_body(&users[1], GA),
        )
        .await;
        assert_eq!((status, code(&e)), (400, "Request_BadRequest"));
        assert_eq!(
            e["error"]["message"],
            "A conflicting object with one or more of the specified property values is present in the directory."
        );
        let (status, _, e) = call(
            &d,
            Method::POST,
            "roleManagement/directory/roleAssignments",
            t,
            create_body(&users[1], "11111111-2222-3333-4444-555555555555"),
        )
        .await;
        assert_eq!((status, code(&e)), (400, "Request_BadRequest"));
        let (status, _, e) = call(
            &d,
            Method::POST,
            "roleManagement/directory/roleAssignments",
            t,
            create_body("11111111-2222-3333-4444-555555555555", GA),
        )
        .await;
        assert_eq!((status, code(&e)), (404, "Request_ResourceNotFound"));

        // Filter on the role: 3 items over two pages (page size 2), encoded as `%20`.
        let filter = format!("roleDefinitionId eq '{GA}'");
        let first = format!(
            "roleManagement/directory/roleAssignments?$filter={}",
            encode_query_value(&filter)
        );
        let (status, _, page1) = call(&d, Method::GET, &first, t, None).await;
        assert_eq!(status, 200, "{page1}");
        assert_eq!(page1["value"].as_array().unwrap().len(), 2);
        let next = page1["@odata.nextLink"].as_str().unwrap().to_owned();
        assert!(next.starts_with(&format!(
            "{}/v1.0/roleManagement/directory/roleAssignments?",
            d.base
        )));
        assert!(next.contains("$skiptoken="));
        let (status, _, page2) = call(&d, Method::GET, &next, t, None).await;
        assert_eq!(status, 200);
        assert_eq!(page2["value"].as_array().unwrap().len(), 1);
        assert!(page2.get("@odata.nextLink").is_none());
        let mut seen: Vec<String> = page1["value"]
            .as_array()
            .unwrap()
            .iter()
            .chain(page2["value"].as_array().unwrap())
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect();
        seen.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(seen, want);

        // `and` of principal and role, encoded by reqwest's `query` (spaces as `+`).
        let r = reqwest::Client::new()
            .get(format!(
                "{}/v1.0/roleManagement/directory/roleAssignments",
                d.base
            ))
            .query(&[(
                "$filter",
                format!(
                    "principalId eq '{}' and roleDefinitionId eq '{EXCHANGE}' and directoryScopeId eq '/'",
                    users[0]
                ),
            )])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["value"].as_array().unwrap().len(), 1);
        assert_eq!(v["value"][0]["roleDefinitionId"], EXCHANGE);
        let (status, _, e) = call(
            &d,
            Method::GET,
            "roleManagement/directory/roleAssignments?$filter=foo%20eq%20'x'",
            t,
            None,
        )
        .await;
        assert_eq!((status, code(&e)), (400, "BadRequest"));

        // Delete, then it is gone; an unknown id answers 404.
        let path = format!("roleManagement/directory/roleAssignments/{}", ids[1]);
        let (status, _, _) = call(&d, Method::DELETE, &path, t, None).await;
        assert_eq!(status, 204);
        let (status, _, e) = call(&d, Method::DELETE, &path, t, None).await;
        assert_eq!((status, code(&e)), (404, "Request_ResourceNotFound"));
        assert_eq!(d.assignments().len(), 4);
        assert!(d.assignments().iter().all(|a| a.id != ids[1]));
        let (_, _, page1) = call(&d, Method::GET, &first, t, None).await;
        assert_eq!(page1["value"].as_array().unwrap().len(), 2);
        assert!(page1.get("@odata.nextLink").is_none());

        // The portal's assignment shows up; the requests were recorded.
        let portal = d.add_assignment_in_portal(&users[2], EXCHANGE, "/");
        assert!(d.assignments().iter().any(|a| a.id == portal));
        let recorded = d.requests();
        assert!(
            recorded
                .iter()
                .any(|r| r.method == "DELETE" && r.status == 404)
        );
        assert!(
            recorded
                .iter()
                .any(|r| r.method == "GET" && r.path.contains("$skiptoken=") && r.status == 200)
        );
        assert!(
            recorded
                .iter()
                .any(|r| r.path.ends_with("/token") && r.status == 200)
        );
    }

    #[test]
    fn assignment_ids_are_graphs() {
        assert_eq!(
            assignment_id(GA, "4ab0b690-479b-47ff-af8f-2576cf521872", "/"),
            "lAPpYvVpN0KRkAEhdxReEJC2sEqbR_9Hr48lds9SGHI-1"
        );
    }

    #[tokio::test]
    async fn throttling_answers_429_with_retry_after() {
        let d = GraphDouble::start(TENANT, secret_app(), &["User.Read.All"]).await;
        let uid = d.add_user("alice@contoso.example");
        d.throttle_next(2, 7);
        // Token calls are not throttled.
        let token = secret_token(&d).await;
        let path = format!("users/{uid}");
        for _ in 0..2 {
            let (status, headers, e) = call(&d, Method::GET, &path, Some(&token), None).await;
            assert_eq!((status, code(&e)), (429, "TooManyRequests"));
            assert_eq!(e["error"]["message"], "Too many requests");
            assert_eq!(headers.get("retry-after").unwrap(), "7");
        }
        let (status, _, _) = call(&d, Method::GET, &path, Some(&token), None).await;
        assert_eq!(status, 200);
        let statuses: Vec<u16> = d.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![200, 429, 429, 200]);
    }

    #[tokio::test]
    async fn replication_delay_makes_delete_404() {
        let d = GraphDouble::start(
            TENANT,
            secret_app(),
            &["RoleManagement.ReadWrite.Directory"],
        )
        .await;
        let token = secret_token(&d).await;
        let uid = d.add_user("alice@contoso.example");
        d.set_replication_delay(Duration::from_millis(400));
        let (status, _, body) = call(
            &d,
            Method::POST,
            "roleManagement/directory/roleAssignments",
            Some(&token),
            create_body(&uid, GA),
        )
        .await;
        assert_eq!(status, 201);
        let path = format!(
            "roleManagement/directory/roleAssignments/{}",
            body["id"].as_str().unwrap()
        );
        let (status, _, e) = call(&d, Method::DELETE, &path, Some(&token), None).await;
        assert_eq!((status, code(&e)), (404, "Request_ResourceNotFound"));
        let (_, _, list) = call(
            &d,
            Method::GET,
            "roleManagement/directory/roleAssignments",
            Some(&token),
            None,
        )
        .await;
        assert_eq!(list["value"].as_array().unwrap().len(), 1);
        tokio::time::sleep(Duration::from_millis(450)).await;
        let (status, _, _) = call(&d, Method::DELETE, &path, Some(&token), None).await;
        assert_eq!(status, 204);
        assert!(d.assignments().is_empty());
    }

    #[tokio::test]
    async fn permissions_are_checked_on_every_call() {
        let d = GraphDouble::start(
            TENANT,
            secret_app(),
            &["RoleManagement.ReadWrite.Directory"],
        )
        .await;
        let token = secret_token(&d).await;
        let t = Some(token.as_str());
        let u1 = d.add_user("a@contoso.example");
        let u2 = d.add_user("b@contoso.example");
        let list = "roleManagement/directory/roleAssignments";
        assert_eq!(
            call(&d, Method::POST, list, t, create_body(&u1, GA))
                .await
                .0,
            201
        );
        d.set_permissions(&["RoleManagement.Read.Directory"]);
        let (status, _, e) = call(&d, Method::POST, list, t, create_body(&u2, GA)).await;
        assert_eq!((status, code(&e)), (403, "Authorization_RequestDenied"));
        assert_eq!(
            e["error"]["message"],
            "Insufficient privileges to complete the operation."
        );
        assert_eq!(call(&d, Method::GET, list, t, None).await.0, 200);
        d.set_permissions(&[]);
        let (status, _, e) = call(&d, Method::GET, list, t, None).await;
        assert_eq!((status, code(&e)), (403, "Authorization_RequestDenied"));
        let (status, _, _) = call(&d, Method::GET, &format!("users/{u1}"), t, None).await;
        assert_eq!(status, 403);
    }

    #[tokio::test]
    async fn exchange_assignments_on_beta() {
        let d =
            GraphDouble::start(TENANT, secret_app(), &["RoleManagement.ReadWrite.Exchange"]).await;
        let token = secret_token(&d).await;
        let t = Some(token.as_str());
        let users: Vec<String> = (0..3)
            .map(|i| d.add_user(&format!("x{i}@contoso.example")))
            .collect();
        d.set_page_size(2);
        let url = format!("{}/beta/roleManagement/exchange/roleAssignments", d.base);
        let body = |principal: &str, role: &str| {
            Some(
                json!({"principalId": principal, "roleDefinitionId": role, "directoryScopeId": "/"}),
            )
        };
        for u in &users {
            let (status, headers, v) = call(
                &d,
                Method::POST,
                &url,
                t,
                body(&format!("/Users/{u}"), EXCHANGE_ORGANIZATION_MANAGEMENT),
            )
            .await;
            assert_eq!(status, 201, "{v}");
            assert_eq!(v["principalId"], format!("/Users/{u}"));
            assert!(v["appScopeId"].is_null());
            assert!(guid_bytes(v["id"].as_str().unwrap()).is_some());
            assert!(headers.get("location").is_some());
        }
        // Duplicate, a bare object id, an unknown user, an unknown role definition.
        let (status, _, e) = call(
            &d,
            Method::POST,
            &url,
            t,
            body(
                &format!("/Users/{}", users[0]),
                EXCHANGE_ORGANIZATION_MANAGEMENT,
            ),
        )
        .await;
        assert_eq!((status, code(&e)), (400, "Request_BadRequest"));
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("conflicting object")
        );
        for principal in [users[1].clone(), format!("/Users/{}", new_guid())] {
            let (status, _, e) = call(
                &d,
                Method::POST,
                &url,
                t,
                body(&principal, EXCHANGE_RECIPIENT_MANAGEMENT),
            )
            .await;
            assert_eq!(
                (status, code(&e)),
                (400, "Request_BadRequest"),
                "{principal}"
            );
        }
        let (status, _, e) = call(
            &d,
            Method::POST,
            &url,
            t,
            body(&format!("/Users/{}", users[1]), GA),
        )
        .await;
        assert_eq!((status, code(&e)), (400, "Request_BadRequest"));
        let custom = d.add_exchange_role_definition("Mail Recipients (custom)");
        let (status, _, _) = call(
            &d,
            Method::POST,
            &url,
            t,
            body(&format!("/Users/{}", users[1]), &custom),
        )
        .await;
        assert_eq!(status, 201);
        // Filter and paging, on beta.
        let filter = format!("roleDefinitionId eq '{EXCHANGE_ORGANIZATION_MANAGEMENT}'");
        let first = format!("{url}?$filter={}", encode_query_value(&filter));
        let (status, _, page1) = call(&d, Method::GET, &first, t, None).await;
        assert_eq!(status, 200, "{page1}");
        assert_eq!(page1["value"].as_array().unwrap().len(), 2);
        let next = page1["@odata.nextLink"].as_str().unwrap().to_owned();
        assert!(next.starts_with(&format!("{url}?")), "{next}");
        let (_, _, page2) = call(&d, Method::GET, &next, t, None).await;
        assert_eq!(page2["value"].as_array().unwrap().len(), 1);
        let filter = format!("principalId eq '/Users/{}'", users[1]);
        let (_, _, v) = call(
            &d,
            Method::GET,
            &format!("{url}?$filter={}", encode_query_value(&filter)),
            t,
            None,
        )
        .await;
        assert_eq!(v["value"].as_array().unwrap().len(), 2);
        // Not on v1.0, and not in the directory collection.
        let (status, _, e) = call(
            &d,
            Method::GET,
            "roleManagement/exchange/roleAssignments",
            t,
            None,
        )
        .await;
        assert_eq!((status, code(&e)), (400, "BadRequest"));
        assert!(d.assignments().is_empty());
        // Delete: 204, then 404.
        let id = d.exchange_assignments()[0].id.clone();
        let (status, _, _) = call(&d, Method::DELETE, &format!("{url}/{id}"), t, None).await;
        assert_eq!(status, 204);
        let (status, _, e) = call(&d, Method::DELETE, &format!("{url}/{id}"), t, None).await;
        assert_eq!((status, code(&e)), (404, "Request_ResourceNotFound"));
        assert_eq!(d.exchange_assignments().len(), 3);
        let portal = d.add_exchange_assignment_in_portal(
            &format!("/Groups/{}", new_guid()),
            EXCHANGE_RECIPIENT_MANAGEMENT,
        );
        assert!(d.exchange_assignments().iter().any(|a| a.id == portal));
        // Without the Exchange permission: 403 on the Exchange collection.
        d.set_permissions(&["RoleManagement.ReadWrite.Directory"]);
        let (status, _, e) = call(&d, Method::GET, &url, t, None).await;
        assert_eq!((status, code(&e)), (403, "Authorization_RequestDenied"));
        let (status, _, e) = call(
            &d,
            Method::POST,
            &url,
            t,
            body(
                &format!("/Users/{}", users[2]),
                EXCHANGE_RECIPIENT_MANAGEMENT,
            ),
        )
        .await;
        assert_eq!((status, code(&e)), (403, "Authorization_RequestDenied"));
        // No token: 401.
        let (status, _, e) = call(&d, Method::GET, &url, None, None).await;
        assert_eq!((status, code(&e)), (401, "InvalidAuthenticationToken"));
    }

    #[tokio::test]
    async fn sign_ins_filter_page_and_p1() {
        let d = GraphDouble::start(TENANT, secret_app(), &["AuditLog.Read.All"]).await;
        let token = secret_token(&d).await;
        d.add_user("a@contoso.example");
        let since = rfc3339(OffsetDateTime::now_utc().replace_nanosecond(0).unwrap());
        let a1 = d.add_sign_in("a@contoso.example", "203.0.113.7", "Azure Portal", 0, "");
        let _c = d.add_sign_in("c@contoso.example", "203.0.113.8", "Azure Portal", 0, "");
        let b1 = d.add_sign_in(
            "b@contoso.example",
            "198.51.100.1",
            "Microsoft Office",
            50126,
            "Error validating credentials due to invalid username or password.",
        );
        let a2 = d.add_sign_in("a@contoso.example", "203.0.113.7", "Azure Portal", 0, "");
        let filter = format!(
            "(userPrincipalName eq 'a@contoso.example' or userPrincipalName eq 'B@contoso.example') and createdDateTime ge {since}"
        );
        let url = format!(
            "auditLogs/signIns?$filter={}&$top=2",
            encode_query_value(&filter)
        );
        let (status, _, page1) = call(&d, Method::GET, &url, Some(&token), None).await;
        assert_eq!(status, 200, "{page1}");
        let ids1: Vec<&str> = page1["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids1, vec![a2.as_str(), b1.as_str()]);
        let b = &page1["value"][1];
        assert_eq!(b["status"]["errorCode"], 50126);
        assert_eq!(b["userPrincipalName"], "b@contoso.example");
        assert!(b["createdDateTime"].as_str().unwrap().ends_with('Z'));
        assert!(b["location"]["countryOrRegion"].is_string());
        let next = page1["@odata.nextLink"].as_str().unwrap().to_owned();
        assert!(next.contains("$top=2"));
        let (status, _, page2) = call(&d, Method::GET, &next, Some(&token), None).await;
        assert_eq!(status, 200);
        assert_eq!(page2["value"].as_array().unwrap().len(), 1);
        assert_eq!(page2["value"][0]["id"], a1.as_str());
        assert!(page2.get("@odata.nextLink").is_none());

        // The same filter, clauses the other way round; a later time excludes everything.
        let later = rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(1));
        let filter =
            format!("createdDateTime ge {later} and (userPrincipalName eq 'a@contoso.example')");
        let url = format!("auditLogs/signIns?$filter={}", encode_query_value(&filter));
        let (_, _, empty) = call(&d, Method::GET, &url, Some(&token), None).await;
        assert_eq!(empty["value"], json!([]));

        d.set_p1(false);
        let (status, _, e) = call(&d, Method::GET, "auditLogs/signIns", Some(&token), None).await;
        assert_eq!(
            (status, code(&e)),
            (403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant")
        );
        d.set_p1(true);
        d.set_permissions(&["Directory.Read.All"]);
        let (status, _, e) = call(&d, Method::GET, "auditLogs/signIns", Some(&token), None).await;
        assert_eq!((status, code(&e)), (403, "Authorization_RequestDenied"));
    }

    #[tokio::test]
    async fn ca_policies_and_transitive_members() {
        let d = GraphDouble::start(
            TENANT,
            secret_app(),
            &["Policy.Read.All", "GroupMember.Read.All"],
        )
        .await;
        let token = secret_token(&d).await;
        let policy =
            json!({"id": new_guid(), "displayName": "Require MFA for admins", "state": "enabled"});
        d.set_ca_policies(vec![policy.clone()]);
        let (status, _, v) = call(
            &d,
            Method::GET,
            "identity/conditionalAccess/policies",
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(v["value"], json!([policy]));

        let a = d.add_user("a@contoso.example");
        let b = d.add_user("b@contoso.example");
        let inner = d.add_group("inner", &[&b]);
        let outer = d.add_group("outer", &[&a, &inner]);
        let (status, _, v) = call(
            &d,
            Method::GET,
            &format!("groups/{outer}/transitiveMembers"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{v}");
        let users: Vec<&str> = v["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["@odata.type"] == "#microsoft.graph.user")
            .map(|m| m["userPrincipalName"].as_str().unwrap())
            .collect();
        assert_eq!(users.len(), 2);
        assert!(users.contains(&"a@contoso.example") && users.contains(&"b@contoso.example"));
        d.set_permissions(&[]);
        let (status, _, _) = call(
            &d,
            Method::GET,
            "identity/conditionalAccess/policies",
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 403);
    }

    #[test]
    fn filter_parser() {
        let e = parse_filter(
            "createdDateTime ge 2026-12-07T08:00:00Z and (userPrincipalName eq 'a@x' or userPrincipalName eq 'o''brien@x')",
        )
        .unwrap();
        let fields = std::cell::RefCell::new(Vec::new());
        e.check(&|c| {
            fields.borrow_mut().push(c.field.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            fields.into_inner(),
            vec!["createdDateTime", "userPrincipalName", "userPrincipalName"]
        );
        assert!(e.eval(&|c| c.op == "ge" || c.value == Lit::Str("o'brien@x".into())));
        assert!(!e.eval(&|c| c.op == "ge"));
        assert!(!e.eval(&|c| c.value == Lit::Str("o'brien@x".into())));
        assert!(parse_filter("principalId eq").is_err());
        assert!(parse_filter("(principalId eq 'x'").is_err());
        assert!(parse_filter("principalId like 'x'").is_err());
        assert!(parse_filter("principalId eq 'x' and").is_err());
    }
}
