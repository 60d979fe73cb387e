//! Access reviews in the console (`/console/reviews`): the items of open rounds the visitor
//! reviews, one item's page (the link in the review emails leads to the list), and the keep or
//! remove decision with its reason. Everything through [`crate::services::reviews`], exactly
//! as the API decides it: a refusal (one's own access, not a reviewer, a closed round) is the
//! service's message on the page and a 403 is audited as a refused attempt. The axum handlers
//! are here too (with their OpenAPI entries), beside the pages they serve.

use axum::extract::Path;
use portcullis_core::api::{ReviewDecisionRequest, ReviewItemView, ReviewRoundView};

use super::*;
use crate::services::reviews as svc;

#[derive(askama::Template)]
#[template(path = "console/reviews.html")]
struct ReviewsPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    items: Vec<ReviewItemView>,
}

#[derive(askama::Template)]
#[template(path = "console/review_item.html")]
struct ReviewItemPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    round: ReviewRoundView,
    i: ReviewItemView,
}

const LIST: &str = "/console/reviews";

/// `GET /console/reviews`.
async fn reviews_page(state: &AppState, headers: &HeaderMap, raw: Option<&str>) -> Response {
    let q = query(raw);
    let v = match visit(state, headers, LIST, LIST).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match svc::my_items(state, &v.caller).await {
        Ok(items) => render(
            &v,
            &ReviewsPage {
                title: "Access reviews",
                error: None,
                done: done_message(q.get("done")),
                nav: &v.nav,
                items,
            },
            StatusCode::OK,
        ),
        Err(e) => {
            audit_refusal(state, &v, "GET", LIST, &e).await;
            error_page(e.status(), &e.message)
        }
    }
}

async fn item_page(
    state: &AppState,
    v: &Visit,
    round_id: &str,
    assignment_id: &str,
    done: Option<&str>,
    error: Option<&ApiError>,
) -> Response {
    let round = match svc::get_round(state, &v.caller, round_id).await {
        Ok(r) => r,
        Err(e) => return error_page(e.status(), &e.message),
    };
    let Some(i) = round
        .items
        .iter()
        .find(|i| i.assignment_id == assignment_id)
        .cloned()
    else {
        return error_page(StatusCode::NOT_FOUND, "no such review item");
    };
    render(
        v,
        &ReviewItemPage {
            title: "Review",
            error: error.map(|e| e.message.as_str()),
            done,
            nav: &v.nav,
            round,
            i,
        },
        error.map_or(StatusCode::OK, ApiError::status),
    )
}

/// The item's path, when both ids are record ids.
fn item_path(round_id: &str, assignment_id: &str) -> Option<String> {
    Some(format!(
        "{LIST}/{}/{}",
        record_id(round_id)?,
        record_id(assignment_id)?
    ))
}

/// The items of open rounds the visitor reviews.
#[utoipa::path(get, path = "/console/reviews", tag = "console",
    responses((status = 200, description = "page", content_type = "text/html"), (status = 303, description = "to sign-in first")))]
pub async fn console_reviews_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    reviews_page(&state, &headers, q.as_deref()).await
}

/// One review item: its facts, and the keep or remove form for its reviewer.
#[utoipa::path(get, path = "/console/reviews/{round}/{assignment}", tag = "console",
    params(("round" = String, Path, description = "round id"), ("assignment" = String, Path, description = "assignment id")),
    responses((status = 200, description = "page", content_type = "text/html"), (status = 303, description = "to sign-in first"), (status = 404, description = "no such item", content_type = "text/html")))]
pub async fn console_review_item_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((round, assignment)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query(q.as_deref());
    // The visitor first (a stranger is sent to sign in; back to the list if the ids are odd).
    let path = item_path(&round, &assignment);
    let v = match visit(&state, &headers, path.as_deref().unwrap_or(LIST), LIST).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if path.is_none() {
        return error_page(StatusCode::NOT_FOUND, "no such review item");
    }
    item_page(
        &state,
        &v,
        &round,
        &assignment,
        done_message(q.get("done")),
        None,
    )
    .await
}

/// Keep or remove a review item, with a reason (form).
#[utoipa::path(post, path = "/console/reviews/{round}/{assignment}/decide", tag = "console",
    params(("round" = String, Path, description = "round id"), ("assignment" = String, Path, description = "assignment id")),
    responses((status = 303, description = "decided: back to the item"), (status = 400, description = "refused, with the reason on the page", content_type = "text/html"), (status = 403, description = "CSRF check failed or refused", content_type = "text/html"), (status = 404, description = "no such item", content_type = "text/html"), (status = 409, description = "closed or decided already", content_type = "text/html")))]
pub async fn console_review_decide_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((round, assignment)): Path<(String, String)>,
    body: String,
) -> Response {
    // The form check first: a forged form learns nothing about the ids.
    let item = item_path(&round, &assignment);
    let (v, f) = match posted(
        &state,
        &headers,
        &body,
        item.as_deref().unwrap_or(LIST),
        LIST,
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(path) = item else {
        return error_page(StatusCode::NOT_FOUND, "no such review item");
    };
    let req = ReviewDecisionRequest {
        decision: f.get("decision").cloned().unwrap_or_default(),
        reason: f.get("reason").cloned().unwrap_or_default(),
    };
    let kept = req.decision == "keep";
    match svc::decide(&state, &v.caller, &round, &assignment, req).await {
        Ok(_) => {
            let done = if kept {
                "review_kept"
            } else {
                "review_removed"
            };
            see_other(&format!("{path}?done={done}"), Vec::new())
        }
        Err(e) => {
            audit_refusal(
                &state,
                &v,
                "POST",
                "/console/reviews/{round}/{assignment}/decide",
                &e,
            )
            .await;
            item_page(&state, &v, &round, &assignment, None, Some(&e)).await
        }
    }
}
