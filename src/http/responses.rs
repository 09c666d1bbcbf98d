//! The error responses the OpenAPI document shares between operations: one per `code` of the
//! Errors table in docs/API.md, each with the one body every error has ([`ErrorBody`]).
//! Handlers list the ones their work can answer; [`super::openapi`] adds the ones an
//! operation's shape implies.

use axum::http::header;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr};
use utoipa::{PartialSchema, ToResponse, ToSchema};

use super::error::ErrorBody;

/// An error response: the shared body, under one `code`.
fn error(description: &str) -> ResponseBuilder {
    let body = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ErrorBody::name())))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", body)
}

/// A reference to one of the shared responses below.
pub fn shared<'r, R: ToResponse<'r>>() -> Ref {
    Ref::from_response_name(R::response().0)
}

/// One reusable response per `code` of the Errors table in docs/API.md; the handlers list the
/// ones their work can answer, and [`ShapeErrors`] the ones their shape does.
macro_rules! error_responses {
    ($($name:ident: $description:literal,)*) => {$(
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), error($description).build().into())
            }
        }
    )*};
}

error_responses! {
    InvalidRequest: "`invalid_request`: malformed JSON or a body that is not a JSON object; a \
        query string that is not valid percent-encoded UTF-8; a missing, unknown, duplicated or \
        ill-typed field or query parameter; a name that breaks the name rules; a `limit` \
        outside 1 to 1000 or a `cursor` that is not one the listing handed out",
    Forbidden: "`forbidden`: the credential is valid but does not allow this: a `check` \
        credential on a write, a key for another tenant, a one-tenant key on an instance-wide \
        view, anything but `ADMIN_TOKEN` on an API-key endpoint, or an API-key endpoint on an \
        instance without `ADMIN_TOKEN`",
    NotFound: "`not_found`: the group a write adds to or a listing names, or the API key to \
        revoke, does not exist; or /metrics on an instance that does not record metrics",
    RevisionNotReached: "`revision_not_reached`: `min_revision` is newer than the tenant's \
        revision in the store",
    NestingRefused: "`cycle`: the parent is the group itself or nested in it, so the group \
        would be inside itself; `nesting_too_deep`: a chain of groups, each nested in the \
        next, would hold more than 8",
    WriteRefused: "`revision_mismatch`: the tenant is not at `if_revision`; `cycle` or \
        `nesting_too_deep`: a nesting among the changes is refused (see /nest-group). \
        Nothing was written",
    ChangesExpired: "`changes_expired`: retention deleted changes the tenant made after \
        `after`; `oldest_revision` in the error is the oldest whose change can still be read. \
        List the tenant and follow its changes from the revision the listing gives",
    PayloadTooLarge: "`payload_too_large`: the request body is larger than the route takes (64 KiB; 2 MiB for a batch of checks or a write of many; POLICY_MAX_BYTES for a policy document)",
    UnsupportedMediaType: "`unsupported_media_type`: a body without \
        `Content-Type: application/json` (or `application/yaml`, where a route takes YAML)",
    Internal: "`internal`: a bug or a store that answered in an unexpected way; the cause is \
        in the server's log",
    Unavailable: "`unavailable`: the store could not be reached or did not answer in time, \
        or a key was presented before this instance could load the keys, or the request was \
        not answered within `REQUEST_TIMEOUT_SECS`; from /ready, the instance is not ready. \
        Retrying later is safe",
}

/// 401 is the one error with a header of its own.
pub struct Unauthorized;

impl<'r> ToResponse<'r> for Unauthorized {
    fn response() -> (&'r str, RefOr<Response>) {
        let challenge = HeaderBuilder::new()
            .schema(Some(String::schema()))
            .description(Some("`Bearer`"))
            .build();
        let response = error(
            "`unauthorized`: the route needs a credential and the request has none, or one \
             that is not in force",
        )
        .header(header::WWW_AUTHENTICATE.as_str(), challenge);
        ("Unauthorized", response.build().into())
    }
}
