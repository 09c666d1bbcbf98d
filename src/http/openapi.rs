//! The API as an OpenAPI 3.1 document, served at GET /openapi.json.
//!
//! The operations come from the route list ([`super::routes`]): each handler's
//! `#[utoipa::path]` annotation, with the very types it takes and answers, so a field added to
//! a request is documented by adding it. This module adds what is the same for every
//! operation: the title, the tags, the bearer scheme, the shared error responses, and the
//! errors an operation's shape implies. What the annotations cannot know is tied down by
//! tests/openapi.rs: that the fields documented are the ones the handlers accept, and that the
//! routes are those of docs/API.md.

use utoipa::openapi::Ref;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::responses::{
    ChangesExpired, Forbidden, Internal, InvalidRequest, NestingRefused, NotFound, PayloadTooLarge,
    RevisionNotReached, Unauthorized, Unavailable, UnsupportedMediaType, WriteRefused, shared,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rbac-server",
        description = "A multi-tenant RBAC policy server. The reference, with examples, is docs/API.md."
    ),
    components(
        schemas(ErrorBody),
        responses(
            InvalidRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            RevisionNotReached,
            NestingRefused,
            WriteRefused,
            ChangesExpired,
            PayloadTooLarge,
            UnsupportedMediaType,
            Internal,
            Unavailable
        )
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "writes", description = "Change a tenant's policy in the store, then tell the other instances."),
        (name = "reads", description = "Answered from the instance's in-memory copy of the tenant."),
        (name = "operations", description = "What an operator and a load balancer watch."),
        (name = "tenants", description = "The tenants that exist, read from the store; an admin credential for every tenant."),
        (name = "API keys", description = "Issue, revoke and list API keys; `ADMIN_TOKEN` only."),
        (name = "console", description = "The web console: a page and its files, embedded in the binary; it calls this API with the credential its user signs in with."),
        (name = "AuthZEN", description = "The OpenID AuthZEN Authorization API 1.0, for each tenant at `/tenants/{tenant}` and at the root; answered from the same in-memory copy as the reads, with the same credentials."),
    )
)]
struct ApiDoc;

/// What every operation shares, for the routes to be added to.
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document with its operations, as JSON.
pub fn finish(mut document: utoipa::openapi::OpenApi) -> String {
    ShapeErrors.modify(&mut document);
    // Taken from Cargo.toml, which names none: an empty license is not a valid one.
    document.info.license = None;
    document
        .to_json()
        .expect("a document of strings, numbers and maps with string keys serializes")
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

/// The errors an operation answers because of its shape or its kind, added to every
/// operation that has it, so that a handler lists only the errors of its own work: a guarded
/// route answers 401 and 403, a JSON body 400, 413 and 415, a query string 400; a read 409
/// (`min_revision`), 500 and 503; a write or a key change 500 and 503 (the store).
struct ShapeErrors;

impl Modify for ShapeErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post, &mut item.put]
                .into_iter()
                .flatten()
            {
                let mut errors: Vec<(&str, Ref)> = Vec::new();
                if operation.security.is_some() {
                    errors.push(("401", shared::<Unauthorized>()));
                    errors.push(("403", shared::<Forbidden>()));
                }
                let tags = operation.tags.as_deref().unwrap_or_default();
                let tagged = |tag: &str| tags.iter().any(|t| t == tag);
                let authzen = tagged(super::authzen::TAG);
                if operation.request_body.is_some() {
                    errors.push(("400", shared::<InvalidRequest>()));
                    errors.push(("413", shared::<PayloadTooLarge>()));
                    // AuthZEN answers a body of another type 400, as its specification says.
                    if !authzen {
                        errors.push(("415", shared::<UnsupportedMediaType>()));
                    }
                }
                if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    errors.push(("400", shared::<InvalidRequest>()));
                }
                if tagged("reads") {
                    errors.push(("409", shared::<RevisionNotReached>()));
                }
                if (tagged("reads")
                    || tagged("writes")
                    || tagged("tenants")
                    || tagged("API keys")
                    || authzen)
                    && operation.security.is_some()
                {
                    errors.push(("500", shared::<Internal>()));
                    errors.push(("503", shared::<Unavailable>()));
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
