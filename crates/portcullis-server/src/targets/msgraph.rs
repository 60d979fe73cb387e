//! The Microsoft Graph connector (`msgraph`): Entra directory roles assigned just in time with
//! the plain role-assignment API (no Entra ID P2 licence needed), observed for drift.
//!
//! A binding's rights name Entra role definitions by template id, at the tenant (`GUID`) or at
//! an administrative unit (`GUID@/administrativeUnits/GUID`), or Exchange Online RBAC role
//! definitions organisation-wide (`exchange:GUID`, the tenant's own role definition id), which
//! Graph offers only under `/beta/roleManagement/exchange/roleAssignments` (principals written
//! `/Users/{id}`, application permission [`EXCHANGE_PERMISSION`]). A person is matched to their
//! own account where one is set (a UPN and the object id resolved when it was set, carried by
//! each operation), else to the Entra user whose UPN the target's template gives
//! (`{user}@contoso.onmicrosoft.com`), resolved with `GET /users/{upn}` and remembered for the
//! connector's life.
//!
//! Invariants:
//! - The app's credential (a client secret, or a certificate's private key signing an RS256
//!   client assertion with the `x5t#S256` header) never appears in an error, a log line or
//!   `Debug`; the access token is cached until five minutes before it expires.
//! - Grant is idempotent: an assignment Graph already holds ("A conflicting object … is
//!   present") counts as applied, so a retried grant never makes a second one.
//! - Revoke deletes every assignment of the principal for the right at its scope, except what
//!   `keep` lists; one already gone counts as revoked, but one that Graph still lists while its
//!   DELETE answers 404 (replication just after creation) is an error to retry, never a
//!   success.
//! - 429 and 503 are waited out as `Retry-After` says (at most [`MAX_RETRY_AFTER`] per wait,
//!   [`RETRIES`] waits per call); beyond that the worker's backoff takes over.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{Held, TargetError, TargetGrant};

/// Timeout of one request.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `Retry-After` waited within one call.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Waits for `Retry-After` within one call.
pub const RETRIES: usize = 3;
/// The token is fetched again this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);
/// Largest answer read.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// Pages followed in one listing.
const MAX_PAGES: usize = 200;
/// The Graph application permission assignments need.
pub const ROLE_PERMISSION: &str = "RoleManagement.ReadWrite.Directory";
/// The Graph application permission Exchange Online role assignments need.
pub const EXCHANGE_PERMISSION: &str = "RoleManagement.ReadWrite.Exchange";
/// The holder prefix of an Exchange assignment's principal that is not a user (a group, a
/// service principal), kept as Graph wrote it: `principal:/Groups/ID`.
const OPAQUE_PRINCIPAL: &str = "principal:";

/// How the app authenticates.
enum Credential {
    Secret(SecretString),
    Certificate {
        key: jsonwebtoken::EncodingKey,
        x5t_s256: String,
    },
}

/// A Microsoft Graph target.
pub struct MsGraph {
    tenant: String,
    client_id: String,
    login_base: url::Url,
    graph_base: url::Url,
    upn_template: String,
    /// The tenant's own break-glass accounts (UPNs), watched.
    pub emergency_accounts: Vec<String>,
    credential: Credential,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<(SecretString, Instant)>>,
    /// UPN → object id, and object id → UPN (or `servicePrincipal:ID`).
    users: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for MsGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsGraph")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("graph_base", &self.graph_base.as_str())
            .finish_non_exhaustive()
    }
}

/// The Graph RBAC provider a right belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Provider {
    /// Entra directory roles (`/v1.0/roleManagement/directory`).
    Directory,
    /// Exchange Online RBAC roles (`/beta/roleManagement/exchange`, beta only).
    Exchange,
}

impl Provider {
    /// The role-assignment collection's path under the Graph base.
    fn assignments(self) -> &'static str {
        match self {
            Provider::Directory => "/v1.0/roleManagement/directory/roleAssignments",
            Provider::Exchange => "/beta/roleManagement/exchange/roleAssignments",
        }
    }

    /// How this provider's assignments name the user with this object id.
    fn user_principal(self, object_id: &str) -> String {
        match self {
            Provider::Directory => object_id.to_owned(),
            Provider::Exchange => format!("/Users/{object_id}"),
        }
    }

    /// How this provider's assignments name the service principal with this object id.
    fn app_principal(self, object_id: &str) -> String {
        match self {
            Provider::Directory => object_id.to_owned(),
            Provider::Exchange => format!("/ServicePrincipals/{object_id}"),
        }
    }
}

/// One right at an Entra target: a role definition at a directory scope, of a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Right {
    pub provider: Provider,
    pub role_definition_id: String,
    pub directory_scope_id: String,
}

/// The rest of `s` after `prefix`, compared without regard to ASCII case.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map(|_| &s[prefix.len()..])
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Right {
    /// `GUID` (the tenant) or `GUID@/administrativeUnits/GUID` for a directory role;
    /// `exchange:GUID` for an Exchange Online role, organisation-wide only.
    pub fn parse(s: &str) -> Result<Self, TargetError> {
        if let Some(rest) = strip_prefix_ci(s, "exchange:") {
            let (role, scope) = rest.split_once('@').unwrap_or((rest, "/"));
            if !is_guid(role) {
                return Err(TargetError::Config(format!(
                    "{:?} is not an Exchange Online role definition id (exchange:GUID, the tenant's own role definition id as GET /beta/roleManagement/exchange/roleDefinitions lists it)",
                    role.chars().take(60).collect::<String>()
                )));
            }
            if scope != "/" {
                return Err(TargetError::Config(format!(
                    "Exchange scope {:?} is not supported: an Exchange right is organisation-wide only (exchange:GUID, scope /)",
                    scope.chars().take(80).collect::<String>()
                )));
            }
            return Ok(Self {
                provider: Provider::Exchange,
                role_definition_id: role.to_ascii_lowercase(),
                directory_scope_id: "/".to_owned(),
            });
        }
        let (role, scope) = s.split_once('@').unwrap_or((s, "/"));
        if !is_guid(role) {
            return Err(TargetError::Config(format!(
                "{:?} is not an Entra role template id (a GUID, e.g. 62e90394-69f5-4237-9190-012177145e10 for Global Administrator; exchange:GUID for an Exchange Online role)",
                role.chars().take(60).collect::<String>()
            )));
        }
        let scope_ok = scope == "/"
            || scope
                .strip_prefix("/administrativeUnits/")
                .is_some_and(is_guid);
        if !scope_ok {
            return Err(TargetError::Config(format!(
                "directory scope {:?} must be / or /administrativeUnits/GUID",
                scope.chars().take(80).collect::<String>()
            )));
        }
        Ok(Self {
            provider: Provider::Directory,
            role_definition_id: role.to_ascii_lowercase(),
            directory_scope_id: scope.to_owned(),
        })
    }

    /// The right's text, as [`Self::parse`] reads it (role ids in lower case).
    pub fn text(&self) -> String {
        let role = self.role_definition_id.to_ascii_lowercase();
        match self.provider {
            Provider::Exchange => format!("exchange:{role}"),
            Provider::Directory if self.directory_scope_id == "/" => role,
            Provider::Directory => format!("{role}@{}", self.directory_scope_id),
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct Assignment {
    id: String,
    #[serde(rename = "principalId")]
    principal_id: String,
    #[serde(rename = "roleDefinitionId")]
    role_definition_id: String,
    /// Absent (or null) when the assignment has an app scope instead.
    #[serde(rename = "directoryScopeId", default)]
    directory_scope_id: Option<String>,
    /// An Exchange management scope, for one.
    #[serde(rename = "appScopeId", default)]
    app_scope_id: Option<String>,
}

impl Assignment {
    /// The right this assignment gives, if a binding can name it: a directory role at its
    /// directory scope, or an Exchange role organisation-wide (not one limited to an
    /// administrative unit, a group or a management scope).
    fn right(&self, provider: Provider) -> Option<Right> {
        let scope = self.directory_scope_id.as_deref()?;
        if self.app_scope_id.as_deref().is_some_and(|s| !s.is_empty())
            || (provider == Provider::Exchange && scope != "/")
        {
            return None;
        }
        Some(Right {
            provider,
            role_definition_id: self.role_definition_id.to_ascii_lowercase(),
            directory_scope_id: scope.to_owned(),
        })
    }
}

/// The object id of an Exchange principal written `/Users/{id}`.
fn exchange_user(principal_id: &str) -> Option<&str> {
    strip_prefix_ci(principal_id, "/Users/").filter(|id| is_guid(id))
}

/// An OData string literal's inside (`'` doubled).
fn odata_str(s: &str) -> String {
    s.replace('\'', "''")
}

/// A Graph answer read whole.
struct Answer {
    status: u16,
    body: serde_json::Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect()
    }
    fn describe(&self) -> String {
        format!("HTTP {} {} {}", self.status, self.code(), self.message())
            .trim()
            .to_owned()
    }
}

/// The PEM blocks of `label` in `pem`, decoded.
fn pem_blocks(pem: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(b) = rest.find(&begin) {
        let after = &rest[b + begin.len()..];
        let Some(e) = after.find(&end) else { break };
        let body: String = after[..e].split_whitespace().collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(body) {
            out.push(der);
        }
        rest = &after[e + end.len()..];
    }
    out
}

/// The first PEM block of `label` in `pem`, with its BEGIN and END lines.
fn pem_block_text(pem: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let b = pem.find(&begin)?;
    let e = pem[b..].find(&end)? + b + end.len();
    Some(pem[b..e].to_owned())
}

impl MsGraph {
    /// From the target's configuration (`tenant_id`, `client_id`, `login_base`, `graph_base`,
    /// `login`: the UPN template) and its secret: a client secret, or a PEM bundle holding the
    /// certificate and its private key.
    pub fn new(
        config: &serde_json::Value,
        secret: Option<SecretString>,
    ) -> Result<Self, TargetError> {
        let field = |k: &str| config[k].as_str().unwrap_or("").to_owned();
        let tenant = field("tenant_id");
        if tenant.is_empty()
            || tenant.len() > 100
            || !tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(TargetError::Config(
                "tenant_id must be the tenant's GUID or domain".into(),
            ));
        }
        let client_id = field("client_id");
        if !is_guid(&client_id) {
            return Err(TargetError::Config(
                "client_id must be the app registration's application (client) id, a GUID".into(),
            ));
        }
        let base = |k: &str, default: &str| {
            let v = config[k].as_str().unwrap_or(default);
            super::webhook::check_url(k, v)
        };
        let login_base = base("login_base", "https://login.microsoftonline.com")?;
        let graph_base = base("graph_base", "https://graph.microsoft.com")?;
        let upn_template = config["login"].as_str().unwrap_or("").to_owned();
        if !upn_template.contains("{user}") || !upn_template.contains('@') {
            return Err(TargetError::Config(
                "login must give each person's UPN, e.g. {user}@contoso.onmicrosoft.com".into(),
            ));
        }
        let emergency_accounts: Vec<String> = config["emergency_accounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .map(str::to_owned)
            .collect();
        for u in &emergency_accounts {
            let ok = u.len() <= 113
                && u.split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
                && !u
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '\'');
            if !ok {
                return Err(TargetError::Config(format!(
                    "emergency account {:?} is not a UPN",
                    u.chars().take(120).collect::<String>()
                )));
            }
        }
        let secret = secret.ok_or_else(|| {
            TargetError::Config(
                "an msgraph target needs the app's client secret or certificate (PEM with its private key)".into(),
            )
        })?;
        let credential = if secret.expose_secret().contains("-----BEGIN") {
            let pem = secret.expose_secret();
            let cert = pem_blocks(pem, "CERTIFICATE")
                .into_iter()
                .next()
                .ok_or_else(|| TargetError::Config("the PEM bundle holds no CERTIFICATE".into()))?;
            use sha2::Digest;
            let x5t_s256 = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(&cert));
            // The key's own block: the PEM reader takes the first block it meets.
            let key_block = ["RSA PRIVATE KEY", "PRIVATE KEY"]
                .iter()
                .find_map(|label| pem_block_text(pem, label))
                .unwrap_or_default();
            let key =
                jsonwebtoken::EncodingKey::from_rsa_pem(key_block.as_bytes()).map_err(|_| {
                    TargetError::Config(
                        "the PEM bundle holds no RSA private key (Entra app certificates are RSA)"
                            .into(),
                    )
                })?;
            Credential::Certificate { key, x5t_s256 }
        } else {
            Credential::Secret(secret)
        };
        Ok(Self {
            tenant,
            client_id,
            login_base,
            graph_base,
            upn_template,
            emergency_accounts,
            credential,
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| TargetError::Config(format!("HTTP client: {e}")))?,
            token: tokio::sync::Mutex::new(None),
            users: Mutex::new(HashMap::new()),
        })
    }

    /// The UPN of a Portcullis person at this tenant.
    pub fn upn(&self, person: &str) -> String {
        self.upn_template.replace("{user}", person)
    }

    /// The UPN a grant acts on: the person's own account if one is set, else the template's.
    fn holder(&self, g: &TargetGrant) -> String {
        g.account.clone().unwrap_or_else(|| self.upn(&g.person))
    }

    /// The object id a grant acts on: the one stored with the person's own account (so a
    /// revoke reaches the user that was granted even after a rename), else resolved.
    async fn principal_of(&self, g: &TargetGrant) -> Result<String, TargetError> {
        match &g.account_id {
            Some(id) => Ok(id.clone()),
            None => self.user_id(&self.holder(g)).await,
        }
    }

    /// The person the UPN template maps `upn` to, if `upn` has its shape.
    pub fn template_person(&self, upn: &str) -> Option<String> {
        super::template_person(&self.upn_template, upn)
    }

    /// A person's own account: the Entra user named by `account` (a UPN or an object id), as
    /// (its UPN, its object id). An unknown user is refused.
    pub async fn resolve_account(&self, account: &str) -> Result<(String, String), TargetError> {
        let url = format!(
            "{}?$select=id,userPrincipalName",
            self.graph(&format!("/users/{}", urlencode(account)))
        );
        let a = self.call(reqwest::Method::GET, &url, None).await?;
        match (
            a.status,
            a.body["userPrincipalName"].as_str(),
            a.body["id"].as_str(),
        ) {
            (200, Some(upn), Some(id)) if is_guid(id) => Ok((upn.to_owned(), id.to_owned())),
            (200, _, _) => Err(TargetError::Refused("Graph: a user without an id".into())),
            (404, _, _) => Err(TargetError::Refused(format!(
                "no Entra user {} in the tenant",
                account.chars().take(120).collect::<String>()
            ))),
            _ => Err(TargetError::Refused(format!("Graph: {}", a.describe()))),
        }
    }

    /// A grant means: its person's UPN holds each right.
    pub fn desired(&self, g: &TargetGrant) -> Vec<Held> {
        g.target_grants
            .iter()
            .filter_map(|r| Right::parse(r).ok())
            .map(|r| Held {
                holder: self.holder(g),
                right: r.text(),
            })
            .collect()
    }

    fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.login_base.as_str().trim_end_matches('/'),
            self.tenant
        )
    }

    fn graph(&self, path: &str) -> String {
        format!(
            "{}/v1.0{path}",
            self.graph_base.as_str().trim_end_matches('/')
        )
    }

    /// An access token for Graph, cached until shortly before it expires.
    async fn token(&self, fresh: bool) -> Result<SecretString, TargetError> {
        let mut cached = self.token.lock().await;
        if !fresh
            && let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let scope = format!(
            "{}/.default",
            self.graph_base.as_str().trim_end_matches('/')
        );
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", self.client_id.clone()),
            ("scope", scope),
        ];
        match &self.credential {
            Credential::Secret(s) => form.push(("client_secret", s.expose_secret().to_owned())),
            Credential::Certificate { key, x5t_s256 } => {
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                header.x5t_s256 = Some(x5t_s256.clone());
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let claims = serde_json::json!({
                    "aud": self.token_url(), "iss": self.client_id, "sub": self.client_id,
                    "jti": hex::encode(rand::random::<[u8; 16]>()),
                    "iat": now, "nbf": now, "exp": now + 300,
                });
                let assertion = jsonwebtoken::encode(&header, &claims, key)
                    .map_err(|_| TargetError::Config("cannot sign the client assertion".into()))?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion));
            }
        }
        let resp = self
            .http
            .post(self.token_url())
            .form(&form)
            .send()
            .await
            .map_err(|e| TargetError::Unreachable(format!("token endpoint: {}", transport(&e))))?;
        let status = resp.status().as_u16();
        let body: serde_json::Value = read_json(resp).await;
        if status != 200 {
            // Entra's `error_description` starts with its AADSTS code and says what is wrong
            // (never the secret itself).
            let why = body["error_description"]
                .as_str()
                .and_then(|d| d.lines().next())
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>();
            let err = format!(
                "token: HTTP {status} {} {why}",
                body["error"].as_str().unwrap_or("")
            );
            return Err(if status >= 500 || status == 429 {
                TargetError::Unreachable(err)
            } else {
                TargetError::Refused(err)
            });
        }
        let t: TokenAnswer = serde_json::from_value(body)
            .map_err(|_| TargetError::Refused("token: an answer without access_token".into()))?;
        let until = Instant::now() + Duration::from_secs(t.expires_in).saturating_sub(TOKEN_MARGIN);
        let token = SecretString::from(t.access_token);
        *cached = Some((token.clone(), until));
        Ok(token)
    }

    /// One Graph call: `Retry-After` waited out on 429/503, a refused token fetched again once.
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, TargetError> {
        self.call_allowing(method, url, body, &[]).await
    }

    /// [`Self::call`], answering the statuses in `own` to the caller instead of as errors.
    async fn call_allowing(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&serde_json::Value>,
        own: &[u16],
    ) -> Result<Answer, TargetError> {
        let mut fresh = false;
        let mut waits = 0;
        loop {
            let token = self.token(fresh).await?;
            let mut rb = self
                .http
                .request(method.clone(), url)
                .bearer_auth(token.expose_secret());
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let resp = rb
                .send()
                .await
                .map_err(|e| TargetError::Unreachable(format!("Graph: {}", transport(&e))))?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let answer = Answer {
                status,
                body: read_json(resp).await,
            };
            match status {
                s if own.contains(&s) => return Ok(answer),
                401 if !fresh => fresh = true,
                429 | 503 | 504 if waits < RETRIES => {
                    waits += 1;
                    let wait = Duration::from_secs(retry_after.unwrap_or(1)).min(MAX_RETRY_AFTER);
                    tokio::time::sleep(wait).await;
                }
                429 | 500..=599 => {
                    return Err(TargetError::Unreachable(format!(
                        "Graph: {}",
                        answer.describe()
                    )));
                }
                403 => {
                    let permission = if url.contains(Provider::Exchange.assignments()) {
                        EXCHANGE_PERMISSION
                    } else {
                        ROLE_PERMISSION
                    };
                    return Err(TargetError::Refused(format!(
                        "Graph: {} (does the app hold {permission}, admin-consented?)",
                        answer.describe()
                    )));
                }
                _ => return Ok(answer),
            }
        }
    }

    /// The object id of `upn` (cached).
    async fn user_id(&self, upn: &str) -> Result<String, TargetError> {
        if let Some(id) = self.users.lock().ok().and_then(|u| u.get(upn).cloned()) {
            return Ok(id);
        }
        let url = format!(
            "{}?$select=id,userPrincipalName",
            self.graph(&format!("/users/{}", urlencode(upn)))
        );
        let a = self.call(reqwest::Method::GET, &url, None).await?;
        match a.status {
            200 => {
                let id = a.body["id"]
                    .as_str()
                    .filter(|i| is_guid(i))
                    .ok_or_else(|| TargetError::Refused("Graph: a user without an id".into()))?
                    .to_owned();
                if let Ok(mut u) = self.users.lock() {
                    u.insert(upn.to_owned(), id.clone());
                    u.insert(id.clone(), upn.to_owned());
                }
                Ok(id)
            }
            404 => Err(TargetError::Refused(format!(
                "no Entra user {upn} (check the target's login template)"
            ))),
            _ => Err(TargetError::Refused(format!("Graph: {}", a.describe()))),
        }
    }

    /// The holder name of an assignment's principal: its UPN, or `servicePrincipal:ID` for an
    /// app (a daemon holding a directory role).
    async fn holder_of(&self, principal_id: &str) -> Result<String, TargetError> {
        if let Some(h) = self
            .users
            .lock()
            .ok()
            .and_then(|u| u.get(principal_id).cloned())
        {
            return Ok(h);
        }
        let url = format!(
            "{}?$select=id,userPrincipalName",
            self.graph(&format!("/users/{}", urlencode(principal_id)))
        );
        let a = self.call(reqwest::Method::GET, &url, None).await?;
        let holder = match (a.status, a.body["userPrincipalName"].as_str()) {
            (200, Some(upn)) => upn.to_owned(),
            (404, _) => format!("servicePrincipal:{principal_id}"),
            _ => return Err(TargetError::Refused(format!("Graph: {}", a.describe()))),
        };
        if let Ok(mut u) = self.users.lock() {
            u.insert(principal_id.to_owned(), holder.clone());
        }
        Ok(holder)
    }

    /// The holder name of an assignment's principal at `provider`: for an Exchange assignment,
    /// `/Users/ID` is the user's UPN and anything else (a group, an app, a user Entra no
    /// longer has) is `principal:` and the principal as Graph wrote it.
    async fn holder_at(
        &self,
        provider: Provider,
        principal_id: &str,
    ) -> Result<String, TargetError> {
        let opaque = || format!("{OPAQUE_PRINCIPAL}{principal_id}");
        match provider {
            Provider::Directory => self.holder_of(principal_id).await,
            Provider::Exchange => match exchange_user(principal_id) {
                Some(id) => {
                    let h = self.holder_of(id).await?;
                    Ok(if h.starts_with("servicePrincipal:") {
                        opaque()
                    } else {
                        h
                    })
                }
                None => Ok(opaque()),
            },
        }
    }

    /// The URL of `provider`'s role-assignment collection (`suffix` appended).
    fn assignments_url(&self, provider: Provider, suffix: &str) -> String {
        format!(
            "{}{}{suffix}",
            self.graph_base.as_str().trim_end_matches('/'),
            provider.assignments()
        )
    }

    /// Every assignment at `provider` matching `filter`, following `@odata.nextLink`.
    async fn list(&self, provider: Provider, filter: &str) -> Result<Vec<Assignment>, TargetError> {
        let mut url = format!(
            "{}?$filter={}",
            self.assignments_url(provider, ""),
            urlencode(filter)
        );
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let a = self.call(reqwest::Method::GET, &url, None).await?;
            if a.status != 200 {
                return Err(TargetError::Refused(format!("Graph: {}", a.describe())));
            }
            let page: Vec<Assignment> = serde_json::from_value(a.body["value"].clone())
                .map_err(|_| TargetError::Refused("Graph: an unreadable assignment list".into()))?;
            out.extend(page);
            match a.body["@odata.nextLink"].as_str() {
                // Only links back to the configured Graph: a token is never sent elsewhere.
                Some(next) if next.starts_with(self.graph_base.as_str().trim_end_matches('/')) => {
                    url = next.to_owned();
                }
                Some(_) => {
                    return Err(TargetError::Refused(
                        "Graph: a nextLink to another host".into(),
                    ));
                }
                None => return Ok(out),
            }
        }
        Err(TargetError::Refused(format!(
            "Graph: more than {MAX_PAGES} pages of assignments"
        )))
    }

    /// Assigns `r` to the user with object id `user_id`.
    async fn assign(&self, user_id: &str, r: &Right) -> Result<(), TargetError> {
        let mut body = serde_json::json!({
            "principalId": r.provider.user_principal(user_id),
            "roleDefinitionId": r.role_definition_id,
            "directoryScopeId": r.directory_scope_id,
        });
        if r.provider == Provider::Directory {
            body["@odata.type"] = "#microsoft.graph.unifiedRoleAssignment".into();
        }
        let url = self.assignments_url(r.provider, "");
        let a = self.call(reqwest::Method::POST, &url, Some(&body)).await?;
        match a.status {
            200 | 201 => Ok(()),
            // An identical assignment exists already: applied (idempotent).
            400 | 409 if a.message().contains("conflicting object") => Ok(()),
            // The user (or the assignment) is not replicated yet: try again.
            404 => Err(TargetError::Unreachable(format!(
                "Graph: {} (replication; retried)",
                a.describe()
            ))),
            _ => Err(TargetError::Refused(format!("Graph: {}", a.describe()))),
        }
    }

    /// Deletes every assignment of the user with object id `user_id` for `r`.
    async fn unassign(&self, user_id: &str, r: &Right) -> Result<(), TargetError> {
        self.unassign_principal(&r.provider.user_principal(user_id), r)
            .await
    }

    /// Deletes every assignment of `principal_id` (as `r`'s provider writes it) for `r`.
    async fn unassign_principal(&self, principal_id: &str, r: &Right) -> Result<(), TargetError> {
        let filter = format!(
            "principalId eq '{}' and roleDefinitionId eq '{}'",
            odata_str(principal_id),
            r.role_definition_id
        );
        for a in self.list(r.provider, &filter).await? {
            if a.right(r.provider).as_ref() != Some(r) {
                continue;
            }
            let url = self.assignments_url(r.provider, &format!("/{}", urlencode(&a.id)));
            let d = self.call(reqwest::Method::DELETE, &url, None).await?;
            match d.status {
                200 | 204 => {}
                // Listed but not found: created moments ago and not replicated to the replica
                // that answered. Gone only once the list no longer shows it.
                404 => {
                    return Err(TargetError::Unreachable(format!(
                        "Graph: assignment {} listed but not deletable yet (replication; retried)",
                        a.id
                    )));
                }
                _ => return Err(TargetError::Refused(format!("Graph: {}", d.describe()))),
            }
        }
        Ok(())
    }

    pub async fn grant(&self, g: &TargetGrant) -> Result<(), TargetError> {
        let upn = self.holder(g);
        let id = self.principal_of(g).await?;
        for r in &g.target_grants {
            if let Err(e) = self.assign(&id, &Right::parse(r)?).await {
                // The user may have been deleted and made again under the same UPN: the next
                // attempt resolves it afresh instead of retrying a stale object id.
                self.forget(&upn, &id);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Drops a remembered UPN ↔ object id pair.
    fn forget(&self, upn: &str, id: &str) {
        if let Ok(mut u) = self.users.lock() {
            u.remove(upn);
            u.remove(id);
        }
    }

    pub async fn revoke(&self, g: &TargetGrant, keep: &[Held]) -> Result<(), TargetError> {
        let upn = self.holder(g);
        let id = match self.principal_of(g).await {
            Ok(id) => id,
            // A user deleted in Entra holds nothing any more.
            Err(TargetError::Refused(m)) if m.starts_with("no Entra user") => return Ok(()),
            Err(e) => return Err(e),
        };
        for r in &g.target_grants {
            let Ok(right) = Right::parse(r) else { continue };
            let text = right.text();
            if keep.iter().any(|k| k.holder == upn && k.right == text) {
                continue;
            }
            self.unassign(&id, &right).await?;
        }
        Ok(())
    }

    /// Removes one assignment no grant means (drift reverted).
    pub async fn remove(&self, h: &Held) -> Result<(), TargetError> {
        let right = Right::parse(&h.right)?;
        let principal = if let Some(raw) = h.holder.strip_prefix(OPAQUE_PRINCIPAL) {
            raw.to_owned()
        } else if let Some(sp) = h.holder.strip_prefix("servicePrincipal:") {
            right.provider.app_principal(sp)
        } else {
            right
                .provider
                .user_principal(&self.user_id(&h.holder).await?)
        };
        self.unassign_principal(&principal, &right).await
    }

    /// Who holds each managed right now (every principal, people and apps).
    pub async fn observe(&self, managed: &[String]) -> Result<Vec<Held>, TargetError> {
        let rights: Vec<Right> = managed
            .iter()
            .filter_map(|m| Right::parse(m).ok())
            .collect();
        let managed: Vec<String> = rights.iter().map(Right::text).collect();
        let mut roles: Vec<(Provider, String)> = rights
            .into_iter()
            .map(|r| (r.provider, r.role_definition_id))
            .collect();
        roles.sort();
        roles.dedup();
        let mut out = Vec::new();
        for (provider, role) in roles {
            let filter = format!("roleDefinitionId eq '{role}'");
            for a in self.list(provider, &filter).await? {
                let Some(right) = a.right(provider).map(|r| r.text()) else {
                    continue;
                };
                if !managed.contains(&right) {
                    continue;
                }
                out.push(Held {
                    holder: self.holder_at(provider, &a.principal_id).await?,
                    right,
                });
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Checks the token, the permissions it carries and every managed right's form.
    pub async fn test(&self, managed: &[String]) -> Result<Vec<String>, TargetError> {
        let mut problems: Vec<String> = managed
            .iter()
            .filter_map(|m| Right::parse(m).err().map(|e| e.to_string()))
            .collect();
        let token = match self.token(true).await {
            Ok(t) => t,
            Err(e) => {
                problems.push(e.to_string());
                return Ok(problems);
            }
        };
        let roles = token_roles(token.expose_secret());
        let exchange = managed
            .iter()
            .filter_map(|m| Right::parse(m).ok())
            .any(|r| r.provider == Provider::Exchange);
        let mut needed = vec![ROLE_PERMISSION];
        if exchange {
            needed.push(EXCHANGE_PERMISSION);
        }
        for permission in needed {
            if !roles.iter().any(|r| r == permission) {
                problems.push(format!(
                    "the app lacks the application permission {permission} (grant it and give admin consent)"
                ));
            }
        }
        Ok(problems)
    }
}

/// The Global Administrator role template.
pub const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";
/// How far back each poll of the sign-in logs reads (records arrive minutes late).
pub const SIGN_IN_LOOKBACK: Duration = Duration::from_secs(3600);

/// One sign-in of a watched account, as the sign-in logs hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub id: String,
    pub created: String,
    pub upn: String,
    pub ip: String,
    pub app: String,
    /// 0 for a success.
    pub error_code: i64,
    pub failure_reason: String,
}

/// What reading the sign-in logs gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIns {
    Read(Vec<SignIn>),
    /// The tenant has no Entra ID P1 (sign-in logs are a P1 feature).
    NoPremium,
}

/// Something about the tenant's emergency accounts to fix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// Stable, e.g. `emergency.not_excluded`.
    pub code: String,
    pub message: String,
}

fn finding(code: &str, message: String) -> Finding {
    Finding {
        code: code.to_owned(),
        message,
    }
}

impl MsGraph {
    /// The sign-ins of `upns` since `since` (RFC 3339, whole seconds, UTC), every page.
    pub async fn sign_ins(&self, upns: &[String], since: &str) -> Result<SignIns, TargetError> {
        if upns.is_empty() {
            return Ok(SignIns::Read(Vec::new()));
        }
        let who: Vec<String> = upns
            .iter()
            .map(|u| format!("userPrincipalName eq '{}'", u.replace('\'', "''")))
            .collect();
        let filter = format!("createdDateTime ge {since} and ({})", who.join(" or "));
        let mut url = format!(
            "{}?$filter={}",
            self.graph("/auditLogs/signIns"),
            urlencode(&filter)
        );
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let a = self
                .call_allowing(reqwest::Method::GET, &url, None, &[403])
                .await?;
            if a.status == 403
                && a.code() == "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
            {
                return Ok(SignIns::NoPremium);
            }
            if a.status != 200 {
                return Err(TargetError::Refused(format!(
                    "Graph: {} (reading sign-in logs needs AuditLog.Read.All)",
                    a.describe()
                )));
            }
            for r in a.body["value"].as_array().into_iter().flatten() {
                let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
                out.push(SignIn {
                    id: s("id"),
                    created: s("createdDateTime"),
                    upn: s("userPrincipalName"),
                    ip: s("ipAddress"),
                    app: s("appDisplayName"),
                    error_code: r["status"]["errorCode"].as_i64().unwrap_or(0),
                    failure_reason: r["status"]["failureReason"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                });
            }
            match a.body["@odata.nextLink"].as_str() {
                Some(next) if next.starts_with(self.graph_base.as_str().trim_end_matches('/')) => {
                    url = next.to_owned();
                }
                _ => return Ok(SignIns::Read(out)),
            }
        }
        Ok(SignIns::Read(out))
    }

    /// The findings about the tenant's emergency accounts `upns` (Microsoft's guidance): at
    /// least two, on the tenant's `onmicrosoft.com` domain, each holding Global Administrator
    /// permanently, and excluded (directly or by a group) from every enabled
    /// conditional-access policy.
    pub async fn posture(&self, upns: &[String]) -> Result<Vec<Finding>, TargetError> {
        let mut out = Vec::new();
        if upns.len() < 2 {
            out.push(finding(
                "emergency.fewer_than_two",
                format!(
                    "{} emergency account(s) configured: keep at least two",
                    upns.len()
                ),
            ));
        }
        let mut ids = Vec::new();
        for u in upns {
            if !u.to_ascii_lowercase().ends_with(".onmicrosoft.com") {
                out.push(finding(
                    "emergency.not_onmicrosoft",
                    format!("{u} is not on the tenant's onmicrosoft.com domain (a federated or custom domain can fail with it)"),
                ));
            }
            match self.user_id(u).await {
                Ok(id) => ids.push((u.clone(), id)),
                Err(TargetError::Refused(m)) if m.starts_with("no Entra user") => {
                    out.push(finding("emergency.missing", format!("no Entra user {u}")));
                }
                Err(e) => return Err(e),
            }
        }
        let ga = self
            .list(
                Provider::Directory,
                &format!("roleDefinitionId eq '{GLOBAL_ADMINISTRATOR}'"),
            )
            .await?;
        for (u, id) in &ids {
            if !ga.iter().any(|a| {
                a.principal_id.eq_ignore_ascii_case(id)
                    && a.directory_scope_id.as_deref() == Some("/")
            }) {
                out.push(finding(
                    "emergency.not_global_admin",
                    format!("{u} does not hold Global Administrator permanently"),
                ));
            }
        }
        let url = self.graph("/identity/conditionalAccess/policies");
        let a = self
            .call_allowing(reqwest::Method::GET, &url, None, &[403])
            .await?;
        if a.status != 200 {
            out.push(finding(
                "policies.unreadable",
                format!(
                    "cannot read conditional-access policies: {} (the app needs Policy.Read.All)",
                    a.describe()
                ),
            ));
            out.sort();
            return Ok(out);
        }
        let mut members: HashMap<String, Vec<String>> = HashMap::new();
        for p in a.body["value"].as_array().into_iter().flatten() {
            if p["state"].as_str() != Some("enabled") {
                continue;
            }
            let users = &p["conditions"]["users"];
            let list = |k: &str| -> Vec<String> {
                users[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str())
                    .map(str::to_ascii_lowercase)
                    .collect()
            };
            let excluded_users = list("excludeUsers");
            let excluded_groups = list("excludeGroups");
            for (u, id) in &ids {
                let mut excluded = excluded_users.contains(&id.to_ascii_lowercase());
                for g in &excluded_groups {
                    if excluded {
                        break;
                    }
                    if !members.contains_key(g) {
                        let m = self.transitive_members(g).await?;
                        members.insert(g.clone(), m);
                    }
                    excluded = members
                        .get(g)
                        .is_some_and(|m| m.contains(&id.to_ascii_lowercase()));
                }
                if !excluded {
                    out.push(finding(
                        "emergency.not_excluded",
                        format!(
                            "enabled conditional-access policy {:?} does not exclude {u}",
                            p["displayName"].as_str().unwrap_or("")
                        ),
                    ));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The object ids (lower case) of a group's members, nested groups included.
    async fn transitive_members(&self, group: &str) -> Result<Vec<String>, TargetError> {
        let url = self.graph(&format!("/groups/{}/transitiveMembers", urlencode(group)));
        let a = self
            .call_allowing(reqwest::Method::GET, &url, None, &[403])
            .await?;
        if a.status == 404 {
            return Ok(Vec::new());
        }
        if a.status != 200 {
            return Err(TargetError::Refused(format!("Graph: {}", a.describe())));
        }
        Ok(a.body["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str())
            .map(str::to_ascii_lowercase)
            .collect())
    }
}

/// Findings from what the tenant holds of the mapped roles: a person holding Global
/// Administrator at the tenant without a grant from Portcullis (a standing administrator; the
/// emergency accounts are not drift, so never named here), and an app (service principal)
/// holding any mapped role (a daemon that kept its administrator role after consent).
pub fn standing_findings(held: &[Held], drift: &[Held]) -> Vec<Finding> {
    let mut out = Vec::new();
    for h in drift {
        if h.right == GLOBAL_ADMINISTRATOR && !h.holder.starts_with("servicePrincipal:") {
            out.push(finding(
                "standing.global_admin",
                format!(
                    "{} holds Global Administrator permanently, outside Portcullis",
                    h.holder
                ),
            ));
        }
    }
    for h in held {
        if let Some(id) = h.holder.strip_prefix("servicePrincipal:") {
            out.push(finding(
                "service_principal.directory_role",
                format!(
                    "the app (service principal) {id} holds directory role {}",
                    h.right
                ),
            ));
        } else if let Some(id) = h
            .holder
            .strip_prefix(OPAQUE_PRINCIPAL)
            .and_then(|p| strip_prefix_ci(p, "/ServicePrincipals/"))
        {
            out.push(finding(
                "service_principal.exchange_role",
                format!(
                    "the app (service principal) {id} holds Exchange role {}",
                    h.right
                ),
            ));
        }
    }
    out
}

/// The `roles` claim of an access token (read, not verified: it only names what to fix).
pub fn token_roles(jwt: &str) -> Vec<String> {
    jwt.split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| serde_json::from_value(v["roles"].clone()).ok())
        .unwrap_or_default()
}

fn transport(e: &reqwest::Error) -> String {
    crate::workers::alerts::http_error(e)
}

async fn read_json(resp: reqwest::Response) -> serde_json::Value {
    match resp.bytes().await {
        Ok(b) if b.len() <= MAX_BODY => serde_json::from_slice(&b).unwrap_or_default(),
        _ => serde_json::Value::Null,
    }
}

/// Percent-encodes a path segment or query value.
fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_are_template_ids_at_a_directory_scope() {
        let r = Right::parse("62E90394-69f5-4237-9190-012177145e10").expect("tenant scope");
        assert_eq!(r.role_definition_id, "62e90394-69f5-4237-9190-012177145e10");
        assert_eq!(r.directory_scope_id, "/");
        let au = "29232cdf-9323-42fd-ade2-1d097af3e4de@/administrativeUnits/5d6b6bb7-de71-4623-b4af-96380a352509";
        assert_eq!(
            Right::parse(au).expect("AU").directory_scope_id,
            "/administrativeUnits/5d6b6bb7-de71-4623-b4af-96380a352509"
        );
        assert!(Right::parse("global-administrator").is_err());
        assert!(Right::parse("62e90394-69f5-4237-9190-012177145e10@/users/x").is_err());
    }

    #[test]
    fn rights_text_round_trips_for_both_providers() {
        for (input, text) in [
            (
                "62E90394-69f5-4237-9190-012177145e10",
                "62e90394-69f5-4237-9190-012177145e10",
            ),
            (
                "29232CDF-9323-42fd-ade2-1d097af3e4de@/administrativeUnits/5d6b6bb7-de71-4623-b4af-96380a352509",
                "29232cdf-9323-42fd-ade2-1d097af3e4de@/administrativeUnits/5d6b6bb7-de71-4623-b4af-96380a352509",
            ),
            (
                "exchange:0F3A2B1C-1111-4222-8333-944455556666",
                "exchange:0f3a2b1c-1111-4222-8333-944455556666",
            ),
            (
                "Exchange:0f3a2b1c-1111-4222-8333-944455556666@/",
                "exchange:0f3a2b1c-1111-4222-8333-944455556666",
            ),
        ] {
            let r = Right::parse(input).expect(input);
            assert_eq!(r.text(), text, "{input}");
            assert_eq!(Right::parse(&r.text()).expect("again"), r, "{input}");
        }
        let x = Right::parse("exchange:0f3a2b1c-1111-4222-8333-944455556666").expect("exchange");
        assert_eq!(x.provider, Provider::Exchange);
        assert_eq!(x.directory_scope_id, "/");
        assert_eq!(
            Right::parse(GLOBAL_ADMINISTRATOR).expect("GA").provider,
            Provider::Directory
        );
    }

    #[test]
    fn exchange_rights_are_guids_at_the_organisation_only() {
        let e = Right::parse("exchange:not-a-guid").expect_err("not a GUID");
        assert!(
            matches!(&e, TargetError::Config(m) if m.contains("Exchange Online role definition id")),
            "{e}"
        );
        let e = Right::parse(
            "exchange:0f3a2b1c-1111-4222-8333-944455556666@/administrativeUnits/5d6b6bb7-de71-4623-b4af-96380a352509",
        )
        .expect_err("scoped");
        assert!(
            matches!(&e, TargetError::Config(m) if m.contains("organisation-wide only")),
            "{e}"
        );
        assert!(Right::parse("exchange:").is_err());
    }

    #[test]
    fn exchange_assignments_map_to_rights_and_holders() {
        let a = |scope: Option<&str>, app: Option<&str>| Assignment {
            id: "x".into(),
            principal_id: "/Users/4ab0b690-479b-47ff-af8f-2576cf521872".into(),
            role_definition_id: "0F3A2B1C-1111-4222-8333-944455556666".into(),
            directory_scope_id: scope.map(str::to_owned),
            app_scope_id: app.map(str::to_owned),
        };
        assert_eq!(
            a(Some("/"), None)
                .right(Provider::Exchange)
                .map(|r| r.text()),
            Some("exchange:0f3a2b1c-1111-4222-8333-944455556666".to_owned())
        );
        assert!(
            a(Some("/AdministrativeUnits/x"), None)
                .right(Provider::Exchange)
                .is_none()
        );
        assert!(a(None, Some("/x")).right(Provider::Exchange).is_none());
        assert_eq!(
            exchange_user("/users/4ab0b690-479b-47ff-af8f-2576cf521872"),
            Some("4ab0b690-479b-47ff-af8f-2576cf521872")
        );
        assert_eq!(
            exchange_user("/Groups/4ab0b690-479b-47ff-af8f-2576cf521872"),
            None
        );
        assert_eq!(Provider::Exchange.user_principal("abc"), "/Users/abc");
        assert_eq!(Provider::Directory.user_principal("abc"), "abc");
    }

    #[test]
    fn an_app_holding_an_exchange_role_is_a_finding_and_global_admin_stays_directory() {
        let x = "exchange:62e90394-69f5-4237-9190-012177145e10".to_owned();
        let held = vec![
            Held {
                holder: "principal:/ServicePrincipals/0451dbb9-6336-42ea-b58f-5953dc053ece".into(),
                right: x.clone(),
            },
            Held {
                holder: "eve@contoso.onmicrosoft.com".into(),
                right: x.clone(),
            },
        ];
        let f = standing_findings(&held, &held);
        let codes: Vec<&str> = f.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(codes, ["service_principal.exchange_role"]);
    }

    #[test]
    fn token_roles_are_read_from_the_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"roles":["RoleManagement.ReadWrite.Directory"]}"#);
        assert_eq!(token_roles(&format!("h.{payload}.s")), [ROLE_PERMISSION]);
        assert!(token_roles("garbage").is_empty());
    }
}
