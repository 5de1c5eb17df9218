//! Every failure as a JSON reply with the socket's error codes and a fitting HTTP status:
//! `{"ok":false,"error":{"code":..,"message":..}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::event_reader::ReadError;
use crate::service::events::AckError;
use crate::service::login::LoginError;
use crate::service::{ErrorCode, ServiceError};
use crate::store::consumers::ClaimError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            message,
        )
    }

    #[cfg(test)]
    pub fn code_str(&self) -> &'static str {
        self.code.as_str()
    }

    /// The JSON body, also the last line of a stream that fails midway.
    pub fn body(&self) -> Value {
        crate::socket::protocol::error_reply_with(self.code, &self.message, self.extra.clone())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = %self.code, message = %self.message, "http request failed");
        }
        let mut response = (self.status, self.body().to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"orgsync\""),
            );
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> ApiError {
        match error {
            ServiceError::NotFound(message) => ApiError::not_found(message),
            ServiceError::Store(error) => error.into(),
        }
    }
}

impl From<crate::service::host_users::WriteError> for ApiError {
    fn from(error: crate::service::host_users::WriteError) -> ApiError {
        use crate::service::host_users::WriteError;
        match error {
            bad @ WriteError::Bad(_) => ApiError::bad_request(bad.to_string()),
            WriteError::Service(error) => error.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(error: LoginError) -> ApiError {
        let status = match error {
            LoginError::InvalidCode | LoginError::NotAMember => StatusCode::UNPROCESSABLE_ENTITY,
            LoginError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            LoginError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.code(), error.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::internal(error.to_string())
    }
}

impl From<ReadError> for ApiError {
    fn from(error: ReadError) -> ApiError {
        let message = error.to_string();
        match error {
            ReadError::Gap { oldest, .. } => {
                let mut error = ApiError::new(StatusCode::GONE, ErrorCode::Gap, message);
                error.extra.insert("oldest".into(), oldest.into());
                error
            }
            ReadError::AheadOfHead { .. } => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::StoreChanged, message)
            }
            ReadError::Store(error) => error.into(),
        }
    }
}

impl From<AckError> for ApiError {
    fn from(error: AckError) -> ApiError {
        let message = error.to_string();
        match error {
            AckError::AboveHead { .. } => ApiError::bad_request(message),
            AckError::Consumer(ClaimError::Owned { .. } | ClaimError::Reserved { .. }) => {
                ApiError::forbidden(message)
            }
            AckError::Consumer(_) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyConsumers,
                message,
            ),
            AckError::Store(error) => error.into(),
        }
    }
}
