//! GET /openapi.json: the API as an OpenAPI 3.1 document.
//!
//! The document is generated from the handlers' `#[utoipa::path]` annotations and from the very
//! types they take and answer with, so a field added to a request is documented by adding it.
//! What the annotations cannot know is tied down by tests/openapi.rs: that every route the
//! router serves is documented with its methods and nothing else, that the fields documented
//! are the ones the handlers accept, and that the routes are those of docs/API.md.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, ObjectBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema, ToResponse, ToSchema};

use super::error::ErrorBody;
use super::{keys, ops, reads, writes};
use crate::stats::Stats;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rbac-server",
        description = "A multi-tenant RBAC policy server. The reference, with examples, is docs/API.md."
    ),
    paths(
        writes::create_group,
        writes::delete_group,
        writes::add_permission,
        writes::remove_permission,
        writes::assign_user,
        writes::unassign_user,
        writes::refresh_tenant,
        reads::check_get,
        reads::check_post,
        reads::groups,
        reads::group_permissions,
        reads::group_members,
        reads::user_permissions,
        ops::health,
        ops::ready,
        ops::cache_stats,
        document,
        keys::create,
        keys::revoke,
        keys::list,
    ),
    components(
        schemas(ErrorBody),
        responses(
            InvalidRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            RevisionNotReached,
            PayloadTooLarge,
            UnsupportedMediaType,
            Internal,
            Unavailable
        )
    ),
    modifiers(&BearerAuth, &Metrics, &ShapeErrors),
    tags(
        (name = "writes", description = "Change a tenant's policy in the store, then tell the other instances."),
        (name = "reads", description = "Answered from the instance's in-memory copy of the tenant."),
        (name = "operations", description = "What an operator and a load balancer watch."),
        (name = "API keys", description = "Issue, revoke and list API keys; `ADMIN_TOKEN` only."),
    )
)]
struct ApiDoc;

/// The document, serialized once: it depends on nothing but the code.
fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut document = ApiDoc::openapi();
        // Taken from Cargo.toml, which names none: an empty license is not a valid one.
        document.info.license = None;
        document
            .to_json()
            .expect("a document of strings, numbers and maps with string keys serializes")
    })
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    summary = "this API as an OpenAPI 3.1 document",
    responses(
        (status = 200, description = "This document", content_type = "application/json", body = serde_json::Value),
    )
)]
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json())
}

/// The name of the security scheme the guarded operations require.
const BEARER: &str = "bearer";

/// Declares the bearer scheme that the `security(("bearer" = []))` of the guarded routes name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A global token (`ADMIN_TOKEN`, role admin; `CHECK_TOKEN`, role check) or an API \
                 key (`rbac_<id>_<secret>`). Writes need an admin credential once `ADMIN_TOKEN` \
                 is set, reads any credential once `CHECK_TOKEN` is set; without that token the \
                 routes are open. The API-key routes take `ADMIN_TOKEN` only.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// GET /metrics, written out here because its handler is the metrics module's and its body is
/// Prometheus text rather than a type.
struct Metrics;

impl Modify for Metrics {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let text = ContentBuilder::new().schema(Some(String::schema())).build();
        let operation = OperationBuilder::new()
            .tag("operations")
            .operation_id(Some("metrics"))
            .summary(Some(
                "the same counters and request metrics, in the Prometheus text format",
            ))
            .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The Prometheus text exposition format")
                    .content("text/plain; version=0.0.4", text),
            )
            .response("404", shared::<NotFound>())
            .response("503", shared::<Unavailable>());
        openapi
            .paths
            .add_path_operation("/metrics", vec![HttpMethod::Get], operation);
    }
}

/// The errors an operation answers because of its shape, added to every operation that has
/// it, so that a handler lists only the errors of its own work: a guarded route answers 401
/// and 403, a JSON body 400, 413 and 415, a query string 400.
struct ShapeErrors;

impl Modify for ShapeErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                let mut errors: Vec<(&str, Ref)> = Vec::new();
                if operation.security.is_some() {
                    errors.push(("401", shared::<Unauthorized>()));
                    errors.push(("403", shared::<Forbidden>()));
                }
                if operation.request_body.is_some() {
                    errors.push(("400", shared::<InvalidRequest>()));
                    errors.push(("413", shared::<PayloadTooLarge>()));
                    errors.push(("415", shared::<UnsupportedMediaType>()));
                }
                if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    errors.push(("400", shared::<InvalidRequest>()));
                }
                for (status, error) in errors {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error.into());
                }
            }
        }
    }
}

/// The counters of /cache-stats, by the names [`Stats::each`] gives them, so that a counter
/// added there is documented too.
pub fn counters() -> ObjectBuilder {
    let mut counters = ObjectBuilder::new();
    Stats::default().each(|name, _| {
        counters = std::mem::take(&mut counters)
            .property(name, u64::schema())
            .required(name);
    });
    counters
}

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
fn shared<'r, R: ToResponse<'r>>() -> Ref {
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
    PayloadTooLarge: "`payload_too_large`: the request body is larger than 64 KiB",
    UnsupportedMediaType: "`unsupported_media_type`: a body without \
        `Content-Type: application/json`",
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

#[cfg(test)]
mod tests {
    use utoipa::openapi::Schema;

    use super::*;

    #[test]
    fn the_document_is_json_and_served_as_is() {
        let document: serde_json::Value = serde_json::from_str(json()).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        assert!(std::ptr::eq(json(), json()), "serialized once");
    }

    #[test]
    fn every_counter_is_a_required_property() {
        let RefOr::T(Schema::Object(counters)) = counters().into() else {
            panic!("the counters are an object");
        };
        let mut names = Vec::new();
        Stats::default().each(|name, _| names.push(name.to_owned()));
        assert_eq!(counters.required, names);
        assert_eq!(counters.properties.len(), names.len());
    }
}
