//! The finishing pass over the OpenAPI document the router builds, so that a client generated
//! from it works: the bearer security scheme defined, operation ids unique and named
//! `resource_action`, and the answers every JSON operation can give documented with the error
//! shape (the layers before a handler — body parsing, authentication, authorisation, rate
//! limits — answer them, so no handler's annotation lists them).
//!
//! Invariants (tested in tests/api/startup.rs and by openapi-spec-validator in CI):
//! - every operation id is unique;
//! - every `security` requirement names a scheme the components define;
//! - an `/api/v1` operation documents 400, 429 and, if it has a JSON body, 413, 415 and 422;
//!   one that needs a credential documents 401 and 403 too;
//! - every other operation the rate limits cover (all but `edge::limits::RATE_LIMIT_EXEMPT`)
//!   documents 429, and every console form (`POST /console/…`) the 400 and 403 pages of its
//!   form check (a form that does not parse, a failed CSRF check).

use axum::http::Method;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder, path::Operation,
};

use crate::http::edge::limits::is_exempt;

/// The scheme every authenticated operation names.
pub const BEARER: &str = "bearer";

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

/// `resource_action`: the first tag (the resource) and the handler's name, without repeating
/// the resource (`roles` + `list_roles` → `roles_list`).
fn operation_id(tag: &str, handler: &str) -> String {
    let resource = tag.replace('-', "_");
    let singular = resource.trim_end_matches('s');
    let action = handler
        .replace(&format!("_{resource}"), "")
        .replace(&format!("_{singular}"), "");
    let action = action
        .strip_prefix(&format!("{resource}_"))
        .or_else(|| action.strip_prefix(&format!("{singular}_")))
        .unwrap_or(&action)
        .to_owned();
    if action.is_empty() {
        resource
    } else {
        format!("{resource}_{action}")
    }
}

fn html_error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content("text/html", ContentBuilder::new().build())
            .build(),
    )
}

/// Documents what the layers before a page's handler can answer: the rate limits (in the API's
/// error shape) and, for a console form, the form check every one of them passes first.
fn page_layer_answers(op: &mut Operation, method: &str, path: &str) {
    let responses = &mut op.responses.responses;
    let verb: Method = method.to_uppercase().parse().unwrap_or(Method::GET);
    if !is_exempt(&verb, path) {
        responses.entry("429".to_owned()).or_insert_with(|| {
            error_response("rate_limited: too many requests from this address (see Retry-After)")
        });
    }
    if verb == Method::POST && path.starts_with("/console/") {
        responses
            .entry("400".to_owned())
            .or_insert_with(|| html_error_response("the form does not parse"));
        responses.entry("403".to_owned()).or_insert_with(|| {
            html_error_response("the CSRF check failed: the form did not come from this console")
        });
    }
}

/// Documents what the layers before `op`'s handler can answer.
fn layer_answers(op: &mut Operation, api: bool) {
    if !api {
        return;
    }
    let json_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    let authenticated = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    };
    add(
        "400",
        "invalid_request: a parameter or the body is not valid",
    );
    add(
        "429",
        "rate_limited: too many requests from this address (see Retry-After)",
    );
    if json_body {
        add("413", "payload_too_large: the body is larger than allowed");
        add(
            "415",
            "unsupported_media_type: the body must be application/json",
        );
        add(
            "422",
            "invalid_json: the body does not have the documented shape",
        );
    }
    if authenticated {
        add("401", "unauthenticated: no valid bearer credential");
        add(
            "403",
            "forbidden: the caller lacks what this operation needs",
        );
    }
}

/// Finishes the router's document (see the module header).
pub fn finish(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    let mut seen = std::collections::BTreeSet::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        let api = path.starts_with("/api/");
        for (method, op) in [
            ("get", item.get.as_mut()),
            ("put", item.put.as_mut()),
            ("post", item.post.as_mut()),
            ("delete", item.delete.as_mut()),
            ("patch", item.patch.as_mut()),
            ("head", item.head.as_mut()),
            ("options", item.options.as_mut()),
            ("trace", item.trace.as_mut()),
        ] {
            let Some(op) = op else { continue };
            let tag = op
                .tags
                .as_ref()
                .and_then(|t| t.first().cloned())
                .unwrap_or_else(|| "default".to_owned());
            let handler = op.operation_id.clone().unwrap_or_else(|| method.to_owned());
            let mut id = operation_id(&tag, &handler);
            if !seen.insert(id.clone()) {
                id = format!("{id}_{method}");
                seen.insert(id.clone());
            }
            op.operation_id = Some(id);
            layer_answers(op, api);
            if !api {
                page_layer_answers(op, method, path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::operation_id;

    #[test]
    fn operation_ids_are_resource_action() {
        assert_eq!(operation_id("roles", "list_roles"), "roles_list");
        assert_eq!(operation_id("roles", "get_settings"), "roles_get_settings");
        assert_eq!(operation_id("targets", "list"), "targets_list");
        assert_eq!(
            operation_id("alerts", "list_channels"),
            "alerts_list_channels"
        );
        assert_eq!(operation_id("audit", "verify"), "audit_verify");
        assert_eq!(
            operation_id("service-accounts", "show"),
            "service_accounts_show"
        );
    }
}
