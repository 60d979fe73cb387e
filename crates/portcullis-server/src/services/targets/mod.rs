//! Targets: systems where grants become real access (DESIGN.md, Targets). This module keeps
//! the catalogue (targets and role bindings), hands operations to connectors
//! ([`apply`], used by [`crate::workers::targets`]) and compares a target with the desired state
//! ([`reconcile`]).
//!
//! Invariants:
//! - Only holders of `targets.manage` (a privileged permission) add, remove or test targets,
//!   bind roles, reconcile or retry; nobody binds a role they hold or are eligible for
//!   themselves (that would let them decide what their own activation grants), and such a
//!   refusal is audited. Every change is audited and alert-worthy.
//! - A target's secret (a database password, a webhook's HMAC key) is sealed under the master
//!   key with the target's name as associated data, or read at use from a
//!   `PORTCULLIS_TARGET_SECRET_*` variable; it is never shown after creation, never logged and
//!   never in an audit event. A generated webhook key is shown once, in the creating answer.
//! - The store writes target operations with the changes that start and end grants; nothing
//!   here decides when a target must change, only how.
//! - A role counts at a target only when assigned or activated at exactly `/targets/NAME`.

pub mod accounts;
mod engine;
pub mod ssh;

pub use engine::{Engine, Observation};

use portcullis_core::api::{
    BindRoleRequest, CreateTargetRequest, TargetBindingView, TargetOpAttemptView, TargetOpView,
    TargetTestView, TargetView,
};
use portcullis_core::audit::Outcome;
use portcullis_core::error::ErrorCode;
use portcullis_core::roles::{Scope, perm};
use portcullis_store::targets::{Binding, NewBinding, NewTarget, Target, TargetOp};
use portcullis_store::{Change, MasterKey, StoreError};
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::services::caller::{Caller, event};
use crate::state::AppState;
use crate::targets::{Connector, TargetError};
use crate::time_us::{rfc3339, us};

/// Environment variables a target may name for its secret start with this.
pub const SECRET_ENV_PREFIX: &str = "PORTCULLIS_TARGET_SECRET_";
/// The reconcile interval when none is given.
pub const DEFAULT_RECONCILE: i64 = 60;
/// Most target-side rights one binding may name.
const MAX_GRANTS: usize = 32;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg.into())
}

fn seal_aad(name: &str) -> String {
    format!("target:{name}")
}

/// The associated data a dynamic grant's password is sealed with.
pub(crate) fn credential_aad(target: &str, grant_id: &str) -> String {
    format!("target_credential:{target}:{grant_id}")
}

fn no_target(name: &str) -> ApiError {
    ApiError::not_found(format!("no target {name}"))
}

/// A target name: what may follow `/targets/` in a scope.
fn target_name(name: &str) -> Result<String, ApiError> {
    Scope::parse(&format!("/targets/{name}"))
        .map(|_| name.to_owned())
        .map_err(|_| bad(format!("target name {:?} must be 1 to 63 lowercase letters, digits, '-', '.' or '_', starting with a letter or digit", name.chars().take(80).collect::<String>())))
}

/// The connector of a stored target, with its secret unsealed (or read from its variable).
pub fn connector(master: &MasterKey, t: &Target) -> Result<Connector, TargetError> {
    let config: serde_json::Value = serde_json::from_str(&t.config)
        .map_err(|_| TargetError::Config("stored configuration unreadable".into()))?;
    let secret = match (&t.sealed_secret, &t.secret_env) {
        (Some(sealed), _) => {
            let clear = master
                .open(&seal_aad(&t.name), sealed)
                .map_err(|_| TargetError::Config("the sealed secret cannot be opened".into()))?;
            let s = String::from_utf8(clear.to_vec())
                .map_err(|_| TargetError::Config("the sealed secret is not text".into()))?;
            Some(SecretString::from(s))
        }
        (None, Some(var)) => Some(SecretString::from(std::env::var(var).map_err(|_| {
            TargetError::Config(format!("environment variable {var} is not set"))
        })?)),
        (None, None) => None,
    };
    Connector::new(&t.kind, &config, secret)
}

/// The configuration stored in clear (no secret is ever part of it).
fn config_of(req: &CreateTargetRequest) -> Result<serde_json::Value, ApiError> {
    if req.kind == ssh::KIND {
        return ssh_config_of(req);
    }
    if req.ssh.is_some() {
        return Err(bad("ssh settings are for ssh-ca targets"));
    }
    if req.kind == "msgraph" {
        return msgraph_config_of(req);
    }
    if req.msgraph.is_some() {
        return Err(bad("msgraph settings are for msgraph targets"));
    }
    let mut c = serde_json::json!({ "url": req.url });
    match req.kind.as_str() {
        "postgres" => {
            if req.observe_url.is_some() {
                return Err(bad("observe_url is for webhook targets"));
            }
            if let Some(l) = &req.login {
                c["login"] = l.clone().into();
            }
        }
        "webhook" => {
            if req.login.is_some() {
                return Err(bad("login is for postgres targets"));
            }
            if let Some(o) = &req.observe_url {
                c["observe_url"] = o.clone().into();
            }
        }
        other => {
            return Err(bad(format!(
                "unknown target kind {:?} (one of: {})",
                other.chars().take(40).collect::<String>(),
                crate::targets::KINDS.join(", ")
            )));
        }
    }
    Ok(c)
}

/// An msgraph target's configuration: the tenant, the app, Graph's and the authority's base
/// URLs, the UPN template (the app's secret or certificate is sealed apart).
fn msgraph_config_of(req: &CreateTargetRequest) -> Result<serde_json::Value, ApiError> {
    if req.observe_url.is_some() {
        return Err(bad("observe_url is for webhook targets"));
    }
    let s = req
        .msgraph
        .clone()
        .ok_or_else(|| bad("an msgraph target needs msgraph.tenant_id and msgraph.client_id"))?;
    let graph_base = if req.url.is_empty() {
        "https://graph.microsoft.com".to_owned()
    } else {
        req.url.clone()
    };
    Ok(serde_json::json!({
        "url": graph_base,
        "graph_base": graph_base,
        "login_base": s.login_base.unwrap_or_else(|| "https://login.microsoftonline.com".into()),
        "tenant_id": s.tenant_id,
        "client_id": s.client_id,
        "login": req.login.clone().unwrap_or_default(),
        "emergency_accounts": s.emergency_accounts,
    }))
}

/// An ssh-ca target's configuration: no URL, no secret (its CA key is generated).
fn ssh_config_of(req: &CreateTargetRequest) -> Result<serde_json::Value, ApiError> {
    if !req.url.is_empty()
        || req.observe_url.is_some()
        || req.login.is_some()
        || req.secret.is_some()
        || req.secret_env.is_some()
    {
        return Err(bad(
            "an ssh-ca target takes no url, observe_url, login or secret: its CA key is generated and sealed",
        ));
    }
    let settings = req.ssh.clone().unwrap_or_default();
    let max = match settings.max_validity.as_deref() {
        None => portcullis_core::ssh::DEFAULT_MAX_VALIDITY.whole_seconds(),
        Some(d) => portcullis_core::roles::parse_duration(d)
            .map_err(|e| bad(e.to_string()))?
            .whole_seconds(),
    };
    let c = serde_json::json!({ "max_validity_seconds": max, "source_address": settings.source_address });
    // Normalised and checked by the connector.
    let checked = crate::targets::ssh::SshCa::new(&c).map_err(|e| bad(e.to_string()))?;
    Ok(
        serde_json::json!({ "max_validity_seconds": checked.max_validity_s, "source_address": checked.source_address }),
    )
}

pub(crate) fn grants_of(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

fn binding_view(b: Binding) -> TargetBindingView {
    TargetBindingView {
        grants: grants_of(&b.grants),
        ssh: b.options.as_deref().map(|o| {
            let (extensions, force_command) = crate::targets::ssh::options_of(Some(o));
            portcullis_core::api::SshBindingOptions {
                extensions: Some(extensions),
                force_command,
            }
        }),
        mode: b.mode,
        role: b.role,
        target: b.target,
        created_by: b.created_by,
        created_at: rfc3339(b.created_at_us),
    }
}

async fn view(state: &AppState, t: Target) -> Result<TargetView, ApiError> {
    let bindings = state.store.target_bindings(&t.name).await?;
    let ssh = if t.kind == ssh::KIND {
        Some(ssh::view(state, &t).await?)
    } else {
        None
    };
    Ok(TargetView {
        ssh,
        secret: match (&t.sealed_secret, &t.secret_env) {
            (Some(_), _) => "sealed".into(),
            (None, Some(v)) => format!("env:{v}"),
            (None, None) => "none".into(),
        },
        config: serde_json::from_str(&t.config).unwrap_or_default(),
        name: t.name,
        kind: t.kind,
        drift: t.drift_mode,
        reconcile_interval_seconds: t.reconcile_interval_s,
        created_by: t.created_by,
        created_at: rfc3339(t.created_at_us),
        bindings: bindings.into_iter().map(binding_view).collect(),
        generated_secret: None,
    })
}

/// Adds a target. The connector checks its configuration first; nothing is contacted.
pub async fn add(
    state: &AppState,
    caller: &Caller,
    req: CreateTargetRequest,
) -> Result<TargetView, ApiError> {
    caller.require(perm::TARGETS_MANAGE)?;
    let name = target_name(&req.name)?;
    let config = config_of(&req)?;
    let drift = match req.drift.as_deref() {
        None | Some("report") => "report",
        Some("revert") => "revert",
        Some(_) => return Err(bad("drift is report or revert")),
    };
    let interval = match req.reconcile_interval.as_deref() {
        None => DEFAULT_RECONCILE,
        Some(d) => {
            let s = portcullis_core::roles::parse_duration(d)
                .map_err(|e| bad(e.to_string()))?
                .whole_seconds();
            if !(5..=86_400).contains(&s) {
                return Err(bad("reconcile_interval must be between 5s and 24h"));
            }
            s
        }
    };
    if let Some(v) = &req.secret_env {
        let suffix_ok = v.strip_prefix(SECRET_ENV_PREFIX).is_some_and(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        });
        if !suffix_ok {
            return Err(bad(format!(
                "secret_env must be {SECRET_ENV_PREFIX}NAME (upper-case letters, digits, '_')"
            )));
        }
        if req.secret.is_some() {
            return Err(bad("give secret or secret_env, not both"));
        }
    }
    // A webhook always signs: a key is generated when none is given, and shown once.
    let generated = (req.kind == "webhook" && req.secret.is_none() && req.secret_env.is_none())
        .then(|| hex::encode(rand::random::<[u8; 32]>()));
    let secret = req.secret.clone().or_else(|| generated.clone());
    // An msgraph app's certificate and private key (PEM) is a few KB; other secrets are short.
    let max_secret = if req.kind == "msgraph" {
        16 * 1024
    } else {
        1024
    };
    if let Some(s) = &secret
        && (s.is_empty() || s.len() > max_secret)
    {
        return Err(bad(format!("secret must be 1 to {max_secret} bytes")));
    }
    // The connector validates the configuration (URLs, the login template) before it is stored.
    let probe_secret = secret
        .clone()
        .or_else(|| req.secret_env.as_ref().map(|_| "checked-at-use".to_owned()))
        .map(SecretString::from);
    Connector::new(&req.kind, &config, probe_secret).map_err(|e| bad(e.to_string()))?;

    let now = OffsetDateTime::now_utc();
    let add = Change::AddTarget(NewTarget {
        name: name.clone(),
        kind: req.kind.clone(),
        config: config.to_string(),
        sealed_secret: secret
            .as_ref()
            .map(|s| state.master.seal(&seal_aad(&name), s.as_bytes())),
        secret_env: req.secret_env.clone(),
        drift_mode: drift.to_owned(),
        reconcile_interval_s: interval,
        created_by: caller.actor(),
        at_us: us(now),
    });
    // An ssh-ca target's CA key is made with it, in the same write.
    let ca_key = (req.kind == ssh::KIND).then(|| ssh::new_ca_key(&state.master, &name, us(now)));
    let ca_fingerprint = ca_key.as_ref().map(|k| k.fingerprint.clone());
    let change = match ca_key {
        Some(key) => Change::Many(vec![
            add,
            Change::AddSshCaKey {
                key,
                retire_until_us: None,
            },
        ]),
        None => add,
    };
    let ev = event(caller, "target.added", format!("target:{name}")).details(serde_json::json!({
        "kind": req.kind, "config": config, "drift": drift, "reconcile_interval_seconds": interval,
        "secret": if secret.is_some() { "sealed" } else if req.secret_env.is_some() { "env" } else { "none" },
        "ca_fingerprint": ca_fingerprint,
        "alert": true,
    }));
    match state.store.write(change, vec![ev]).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                ErrorCode::AlreadyExists,
                format!("a target named {name} exists"),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let t = state
        .store
        .target(&name)
        .await?
        .ok_or_else(|| ApiError::internal("target vanished"))?;
    let mut v = view(state, t).await?;
    v.generated_secret = generated;
    Ok(v)
}

pub async fn list(state: &AppState, caller: &Caller) -> Result<Vec<TargetView>, ApiError> {
    caller.require(perm::TARGETS_READ)?;
    let mut out = Vec::new();
    for t in state.store.targets().await? {
        out.push(view(state, t).await?);
    }
    Ok(out)
}

pub async fn show(state: &AppState, caller: &Caller, name: &str) -> Result<TargetView, ApiError> {
    caller.require(perm::TARGETS_READ)?;
    let t = state
        .store
        .target(name)
        .await?
        .ok_or_else(|| no_target(name))?;
    view(state, t).await
}

/// Removes a target: refused while a role is bound to it or an operation is pending.
pub async fn remove(state: &AppState, caller: &Caller, name: &str) -> Result<(), ApiError> {
    caller.require(perm::TARGETS_MANAGE)?;
    state
        .store
        .target(name)
        .await?
        .ok_or_else(|| no_target(name))?;
    let ev = event(caller, "target.removed", format!("target:{name}"))
        .details(serde_json::json!({ "alert": true }));
    // A conflict (still bound, or operations pending) is the store's own sentence: a 409.
    state
        .store
        .write(
            Change::RemoveTarget {
                name: name.to_owned(),
            },
            vec![ev],
        )
        .await?;
    Ok(())
}

/// Checks the connection and every right the bindings name.
pub async fn test(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<TargetTestView, ApiError> {
    caller.require(perm::TARGETS_MANAGE)?;
    let t = state
        .store
        .target(name)
        .await?
        .ok_or_else(|| no_target(name))?;
    let managed = managed_rights(&state.store, name).await?;
    if t.kind == ssh::KIND {
        let problems = ssh::check(state, &t).await;
        return Ok(TargetTestView {
            target: name.to_owned(),
            ok: problems.is_empty(),
            problems,
        });
    }
    let problems = match connector(&state.master, &t) {
        Ok(c) => match c.test(&managed).await {
            Ok(p) => p,
            Err(e) => vec![e.to_string()],
        },
        Err(e) => vec![e.to_string()],
    };
    Ok(TargetTestView {
        target: name.to_owned(),
        ok: problems.is_empty(),
        problems,
    })
}

/// Every target-side right a binding of `target` names, sorted, once each: what the connector
/// observes and tests there.
pub(crate) async fn managed_rights(
    store: &portcullis_store::Store,
    target: &str,
) -> Result<Vec<String>, StoreError> {
    let mut all: Vec<String> = store
        .target_bindings(target)
        .await?
        .iter()
        .flat_map(|b| grants_of(&b.grants))
        .collect();
    all.sort();
    all.dedup();
    Ok(all)
}

/// Operation `id`, or a 404.
async fn find_op(state: &AppState, id: i64) -> Result<TargetOp, ApiError> {
    state
        .store
        .target_op(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no target operation {id}")))
}

/// Binds `role` to `target`: activations and active assignments of it at `/targets/NAME`
/// grant `grants` there. Refused to anyone who holds or is eligible for the role. Binding a
/// privileged role decides what its holders get in another system: it is not done on one
/// person's word but recorded as a change request (four eyes; `change_pending`).
pub async fn bind(
    state: &AppState,
    caller: &Caller,
    target: &str,
    role: &str,
    req: BindRoleRequest,
) -> Result<TargetBindingView, ApiError> {
    let sc = caller.require(perm::TARGETS_MANAGE)?;
    let (t, def, mode, options) = planned_binding(state, target, role, &req).await?;
    let ev = event(caller, "target.bound", format!("target:{target}")).details(serde_json::json!({
        "role": role, "grants": req.grants, "mode": mode, "kind": t.kind, "options": options, "alert": true,
    }));
    if sc.assignments.iter().any(|a| a.role == role) {
        let mut refused = ev.outcome(Outcome::Failure);
        if let Some(d) = refused.details.as_object_mut() {
            d.insert("reason".into(), "self_escalation".into());
        }
        state.store.append(refused).await?;
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "you hold or are eligible for {role}: another administrator decides what it grants at {target}"
            ),
        ));
    }
    if def.tier().is_privileged() {
        let change = serde_json::json!({ "target": target, "role": role, "binding": req });
        return Err(crate::services::changes::propose(
            state,
            caller,
            "bind_role",
            &format!("target:{target} role:{role}"),
            change,
            vec!["privileged_role_bound"],
        )
        .await);
    }
    write_binding(
        state,
        &caller.actor(),
        (&t, role, &req),
        (mode, options),
        ev,
        Vec::new(),
    )
    .await
}

/// Applies a binding of a privileged role that was recorded as a change request (approved, or
/// its cooling-off over), validated again as things are now, with `close` (the request's
/// conditional close) and its event in the same write.
pub async fn apply_binding_change(
    state: &AppState,
    actor: &str,
    target: &str,
    role: &str,
    req: BindRoleRequest,
    close: Change,
    close_event: portcullis_core::audit::NewAuditEvent,
) -> Result<TargetBindingView, ApiError> {
    let (t, _, mode, options) = planned_binding(state, target, role, &req).await?;
    let ev = portcullis_core::audit::NewAuditEvent::new(actor, "target.bound", format!("target:{target}"))
        .details(serde_json::json!({
            "role": role, "grants": req.grants, "mode": mode, "kind": t.kind, "options": options, "alert": true,
        }));
    write_binding(
        state,
        actor,
        (&t, role, &req),
        (mode, options),
        ev,
        vec![(close, close_event)],
    )
    .await
}

/// The target, the role, the mode and the SSH options a binding request means, checked.
async fn planned_binding(
    state: &AppState,
    target: &str,
    role: &str,
    req: &BindRoleRequest,
) -> Result<
    (
        Target,
        crate::services::grants::RoleDef,
        &'static str,
        Option<serde_json::Value>,
    ),
    ApiError,
> {
    let t = state
        .store
        .target(target)
        .await?
        .ok_or_else(|| no_target(target))?;
    let def = crate::services::grants::all_roles(state)
        .await?
        .into_iter()
        .find(|r| r.slug == role)
        .ok_or_else(|| ApiError::not_found(format!("no role {role}")))?;
    if req.grants.is_empty() || req.grants.len() > MAX_GRANTS {
        return Err(bad(format!(
            "grants must name 1 to {MAX_GRANTS} target-side rights"
        )));
    }
    let ssh_target = t.kind == ssh::KIND;
    for g in &req.grants {
        // An SSH principal is matched whole against AuthorizedPrincipalsFile lines and the
        // login name: no separators, no spaces.
        if ssh_target && g.chars().any(|c| c == ',' || c.is_whitespace()) {
            return Err(bad(format!(
                "SSH principal {:?} must not contain ',' or spaces",
                g.chars().take(80).collect::<String>()
            )));
        }
        if t.kind == "msgraph" {
            crate::targets::msgraph::Right::parse(g).map_err(|e| bad(e.to_string()))?;
            continue;
        }
        if g.is_empty() || g.len() > 63 || g.chars().any(char::is_control) {
            return Err(bad(format!(
                "target-side right {:?} must be 1 to 63 bytes without control characters",
                g.chars().take(80).collect::<String>()
            )));
        }
    }
    // A PostgreSQL role the database does not have is refused now, not at the first
    // activation. An unreachable database does not block the binding: `targets test` and the
    // operations' errors say so later.
    if t.kind == "postgres"
        && let Ok(c) = connector(&state.master, &t)
        && let Ok(problems) = c.test(&req.grants).await
    {
        let missing: Vec<&String> = problems
            .iter()
            .filter(|p| p.contains("does not exist"))
            .collect();
        if !missing.is_empty() {
            let missing: Vec<&str> = missing.iter().map(|m| m.as_str()).collect();
            return Err(bad(missing.join("; ")));
        }
    }
    let mode = match (req.mode.as_deref(), t.kind.as_str()) {
        (None | Some("grant"), _) => "grant",
        (Some("dynamic"), "postgres") => "dynamic",
        (Some("dynamic"), _) => return Err(bad("mode dynamic is for postgres targets")),
        (Some(_), _) => return Err(bad("mode is grant or dynamic")),
    };
    let options = match (&req.ssh, ssh_target) {
        (Some(_), false) => return Err(bad("ssh options are for ssh-ca targets")),
        (o, true) => {
            let o = o.clone().unwrap_or_default();
            Some(
                crate::targets::ssh::binding_options(
                    o.extensions.as_deref(),
                    o.force_command.as_deref(),
                )
                .map_err(bad)?,
            )
        }
        (None, false) => None,
    };
    Ok((t, def, mode, options))
}

/// Writes the binding by `actor` with its event, and `extra` changes and events with it.
async fn write_binding(
    state: &AppState,
    actor: &str,
    (t, role, req): (&Target, &str, &BindRoleRequest),
    (mode, options): (&'static str, Option<serde_json::Value>),
    ev: portcullis_core::audit::NewAuditEvent,
    extra: Vec<(Change, portcullis_core::audit::NewAuditEvent)>,
) -> Result<TargetBindingView, ApiError> {
    let target = t.name.as_str();
    let now = OffsetDateTime::now_utc();
    let grants = serde_json::to_string(&req.grants).map_err(ApiError::internal)?;
    let mut changes = Vec::new();
    let mut events = vec![ev];
    for (c, e) in extra {
        changes.push(c);
        events.push(e);
    }
    changes.push(Change::BindRole(NewBinding {
        role: role.to_owned(),
        target: target.to_owned(),
        grants,
        mode: mode.to_owned(),
        options: options.map(|o| o.to_string()),
        by: actor.to_owned(),
        at_us: us(now),
    }));
    match state.store.write(Change::Many(changes), events).await {
        Ok(_) => {}
        Err(StoreError::Conflict(m)) if m == portcullis_store::CHANGE_MOVED => {
            return Err(crate::services::support::change_moved());
        }
        Err(e) => return Err(e.into()),
    }
    state
        .store
        .target_bindings(target)
        .await?
        .into_iter()
        .find(|b| b.role == role)
        .map(binding_view)
        .ok_or_else(|| ApiError::internal("binding vanished"))
}

/// Removes a binding; what it granted is revoked.
pub async fn unbind(
    state: &AppState,
    caller: &Caller,
    target: &str,
    role: &str,
) -> Result<(), ApiError> {
    caller.require(perm::TARGETS_MANAGE)?;
    let ev = event(caller, "target.unbound", format!("target:{target}"))
        .details(serde_json::json!({ "role": role, "alert": true }));
    let now = OffsetDateTime::now_utc();
    match state
        .store
        .write(
            Change::UnbindRole {
                role: role.to_owned(),
                target: target.to_owned(),
                at_us: us(now),
            },
            vec![ev],
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(ApiError::not_found(format!(
            "{role} is not bound to target {target}"
        ))),
        Err(e) => Err(e.into()),
    }
}

fn op_view(o: TargetOp) -> TargetOpView {
    TargetOpView {
        next_attempt_at: (o.state == "pending")
            .then(|| rfc3339(o.next_attempt_at_us.max(o.due_at_us))),
        target_grants: grants_of(&o.target_grants),
        id: o.id,
        target: o.target,
        op: o.op,
        grant_id: o.grant_id,
        person: o.principal_name,
        account: o.account,
        role: o.role,
        reason: o.reason,
        state: o.state,
        attempts: o.attempts,
        created_at: rfc3339(o.created_at_us),
        due_at: rfc3339(o.due_at_us),
        applied_at: o.applied_at_us.map(rfc3339),
        last_error: o.last_error,
        history: Vec::new(),
    }
}

/// Operations newest first (at most 500), optionally of one target and state.
pub async fn ops(
    state: &AppState,
    caller: &Caller,
    target: Option<&str>,
    op_state: Option<&str>,
) -> Result<Vec<TargetOpView>, ApiError> {
    caller.require(perm::TARGETS_READ)?;
    if let Some(s) = op_state
        && !matches!(s, "pending" | "applied" | "dead" | "superseded")
    {
        return Err(bad("state is pending, applied, dead or superseded"));
    }
    Ok(state
        .store
        .target_ops(target, op_state, 500)
        .await?
        .into_iter()
        .map(op_view)
        .collect())
}

/// One operation with every attempt.
pub async fn op(state: &AppState, caller: &Caller, id: i64) -> Result<TargetOpView, ApiError> {
    caller.require(perm::TARGETS_READ)?;
    let o = find_op(state, id).await?;
    let mut v = op_view(o);
    v.history = state
        .store
        .target_op_attempts(id)
        .await?
        .into_iter()
        .map(|a| TargetOpAttemptView {
            attempt: a.attempt,
            worker: a.worker,
            started_at: rfc3339(a.started_at_us),
            finished_at: rfc3339(a.finished_at_us),
            outcome: a.outcome,
            detail: a.detail,
        })
        .collect();
    Ok(v)
}

/// Gives a dead operation a fresh budget of attempts (a grant only while nothing followed it).
pub async fn retry(state: &AppState, caller: &Caller, id: i64) -> Result<TargetOpView, ApiError> {
    caller.require(perm::TARGETS_MANAGE)?;
    let o = find_op(state, id).await?;
    let ev = event(caller, "target.operation_retried", format!("target:{}", o.target))
        .details(serde_json::json!({ "operation": id, "op": o.op, "person": o.principal_name, "role": o.role }));
    let now = OffsetDateTime::now_utc();
    state
        .store
        .write(Change::RetryTargetOp { id, at_us: us(now) }, vec![ev])
        .await?;
    op(state, caller, id).await
}

fn held_view(
    h: &crate::targets::Held,
    grant: Option<String>,
) -> portcullis_core::api::HeldRightView {
    portcullis_core::api::HeldRightView {
        holder: h.holder.clone(),
        right: h.right.clone(),
        grant_id: grant,
    }
}

fn unreachable_target(name: &str, e: TargetError) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, format!("target {name}: {e}"))
}

/// What the target holds now, and what of it is missing or drift.
pub async fn observe(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<portcullis_core::api::TargetObservationView, ApiError> {
    caller.require(perm::TARGETS_READ)?;
    let t = state
        .store
        .target(name)
        .await?
        .ok_or_else(|| no_target(name))?;
    let o = Engine::new(state.store.clone(), state.master.clone())
        .observe(&t)
        .await
        .map_err(|e| unreachable_target(name, e))?;
    Ok(portcullis_core::api::TargetObservationView {
        target: name.to_owned(),
        observable: o.observable,
        held: o
            .held
            .iter()
            .map(|(h, g)| held_view(h, g.clone()))
            .collect(),
        missing: o
            .missing
            .iter()
            .map(|(h, g)| held_view(h, Some(g.clone())))
            .collect(),
        drift: o.drift.iter().map(|h| held_view(h, None)).collect(),
        findings: o
            .findings
            .iter()
            .map(|f| portcullis_core::api::TenantFindingView {
                code: f.code.clone(),
                message: f.message.clone(),
            })
            .collect(),
    })
}

/// Reconciles the target now: missing grants written again, drift audited and alerted (and
/// removed in `revert` mode).
pub async fn reconcile(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<portcullis_core::api::TargetReconcileView, ApiError> {
    caller.require(perm::TARGETS_MANAGE)?;
    let t = state
        .store
        .target(name)
        .await?
        .ok_or_else(|| no_target(name))?;
    let (o, reverted) = Engine::new(state.store.clone(), state.master.clone())
        .reconcile(&t, &caller.actor())
        .await
        .map_err(|e| unreachable_target(name, e))?;
    Ok(portcullis_core::api::TargetReconcileView {
        target: name.to_owned(),
        observable: o.observable,
        reapplied: o
            .missing
            .iter()
            .map(|(h, g)| held_view(h, Some(g.clone())))
            .collect(),
        drift: o.drift.iter().map(|h| held_view(h, None)).collect(),
        reverted: reverted.iter().map(|h| held_view(h, None)).collect(),
    })
}

/// Operation counts per target and the time they were read, for `/metrics` (read at most once
/// a second: the endpoint answers anyone).
pub async fn stats(
    state: &AppState,
) -> Result<
    (
        std::sync::Arc<Vec<portcullis_store::targets::TargetStats>>,
        i64,
    ),
    ApiError,
> {
    let now = us(OffsetDateTime::now_utc());
    let stats = state
        .caches
        .target_stats
        .get_or_load(&(), async {
            state.store.target_stats().await.map(std::sync::Arc::new)
        })
        .await?;
    Ok((stats, now))
}

/// Hands the caller the login their dynamic grant at `target` created, once. Needs a full
/// session with a fresh proof (a stolen session or access token cannot collect it); audited
/// without the password.
pub async fn credentials(
    state: &AppState,
    caller: &Caller,
    target: &str,
) -> Result<portcullis_core::api::TargetCredentialsView, ApiError> {
    let me = caller.require_full()?;
    crate::services::privilege::require_fresh_proof(state, caller).await?;
    let t = state
        .store
        .target(target)
        .await?
        .ok_or_else(|| no_target(target))?;
    let now = OffsetDateTime::now_utc();
    let grant = state
        .store
        .live_target_grants(target, us(now))
        .await?
        .into_iter()
        .filter(|g| g.principal_name == me.principal.name.as_str() && g.mode == "dynamic")
        .max_by_key(|g| g.starts_at_us)
        .ok_or_else(|| {
            ApiError::not_found(format!("you hold no live dynamic grant at target {target}"))
        })?;
    let Some((login, sealed, fetched)) = state.store.target_credential(target, &grant.id).await?
    else {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the login is not made yet; try again in a moment (portcullis targets ops)",
        ));
    };
    if fetched {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this grant's login was handed out already; end the grant and activate again for a new one",
        ));
    }
    let password = state
        .master
        .open(&credential_aad(target, &grant.id), &sealed)
        .map_err(|_| ApiError::internal("a target credential cannot be opened"))?;
    let password = String::from_utf8(password.to_vec())
        .map_err(|_| ApiError::internal("a target credential is not text"))?;
    let ev = event(
        caller,
        "target.credentials_issued",
        format!("target:{target}"),
    )
    .details(serde_json::json!({ "grant_id": grant.id, "login": login, "role": grant.role }));
    // Two concurrent calls: the store hands it to one; the other gets its 409.
    state
        .store
        .write(
            Change::TakeTargetCredential {
                target: target.to_owned(),
                grant_id: grant.id.clone(),
                at_us: us(now),
            },
            vec![ev],
        )
        .await?;
    let config: serde_json::Value = serde_json::from_str(&t.config).unwrap_or_default();
    let mut url = url::Url::parse(config["url"].as_str().unwrap_or_default())
        .map_err(|_| ApiError::internal("a stored target URL does not parse"))?;
    let _ = url.set_username(&login);
    let _ = url.set_password(Some(&password));
    Ok(portcullis_core::api::TargetCredentialsView {
        target: target.to_owned(),
        grant_id: grant.id,
        login,
        password,
        connection_string: url.to_string(),
        valid_until: grant.ends_at_us.map(rfc3339),
    })
}
