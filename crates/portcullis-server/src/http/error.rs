//! The one error shape of the API: `{"error":{"code":"…","message":"…"}}` with the status of
//! its code, decided here and nowhere else.
//!
//! Extractor rejections (bad JSON, wrong content type, oversized bodies, bad query strings),
//! unknown routes and wrong methods all come out in this shape.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::error::ErrorCode;

pub use crate::error::{ApiError, ErrorBody, ErrorDetail};

/// The HTTP status of every code: the one place it is decided. The match has no wildcard, so
/// a new code does not compile until it has a status here.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    match code {
        C::InvalidRequest
        | C::PasswordPolicy
        | C::JustificationRequired
        | C::TicketRequired
        | C::DurationTooLong
        | C::InvalidPublicKey => StatusCode::BAD_REQUEST,
        // RFC 9470: a stronger or fresher authentication would succeed.
        C::Unauthenticated
        | C::InvalidCredentials
        | C::InvalidCode
        | C::CodeReplayed
        | C::BootstrapUnavailable
        | C::WebauthnFailed
        | C::StepUpRequired
        | C::ReauthRequired => StatusCode::UNAUTHORIZED,
        C::Forbidden
        | C::AccountDisabled
        | C::MfaEnrolmentRequired
        | C::SelfApproval
        | C::SelfReview
        | C::NotEligible
        | C::CaBlocked
        | C::CaRequirement
        | C::SelfAssignment
        | C::EligibleOnly
        | C::PrivilegedPrincipal
        | C::NotGrantable
        | C::NoActiveGrant
        // Not on one person's word (four eyes): recorded as a change request, not applied.
        | C::ChangePending => StatusCode::FORBIDDEN,
        C::NotFound => StatusCode::NOT_FOUND,
        C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        C::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        C::Conflict
        | C::AlreadyExists
        | C::LastFactor
        | C::AlreadyDecided
        | C::BreakGlassMinimum
        | C::BreakGlassCredential
        | C::CaLockout
        | C::LastGlobalAdministrator => StatusCode::CONFLICT,
        C::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        // A body that is not the JSON the operation takes, by syntax or by shape.
        C::InvalidJson => StatusCode::UNPROCESSABLE_ENTITY,
        C::TooManyAttempts | C::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        C::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        C::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl ApiError {
    /// The HTTP status, from the code ([`status_of`]).
    pub fn status(&self) -> StatusCode {
        status_of(self.code)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                message: self.message,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        // For the layers around the handler (refused attempts are audited by their code).
        resp.extensions_mut().insert(self.code);
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                ErrorCode::UnsupportedMediaType,
                "expected Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(ErrorCode::PayloadTooLarge, "request body is too large")
            }
            JsonRejection::JsonDataError(e) => Self::new(
                ErrorCode::InvalidJson,
                format!("JSON does not match the expected shape: {}", e.body_text()),
            ),
            JsonRejection::JsonSyntaxError(_) => {
                Self::new(ErrorCode::InvalidJson, "request body is not valid JSON")
            }
            other => Self::new(ErrorCode::InvalidRequest, other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request(format!("invalid query string: {}", r.body_text()))
    }
}

/// `Json` whose rejections use the API error shape.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Query` whose rejections use the API error shape.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// Known route, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code answers one status, and an error status: a code never says success.
    #[test]
    fn every_code_has_one_error_status() {
        for &code in ErrorCode::ALL {
            let status = status_of(code);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code} answers {status}"
            );
            assert_eq!(ApiError::new(code, "x").status(), status);
            let resp = ApiError::new(code, "x").into_response();
            assert_eq!(resp.status(), status, "{code}");
        }
        assert_eq!(
            status_of(ErrorCode::StepUpRequired),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(status_of(ErrorCode::NotEligible), StatusCode::FORBIDDEN);
    }
}
