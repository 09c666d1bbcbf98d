//! The web console at `/console`: one page, its modules and its style sheet, compiled into
//! the binary and served as they are, so that the console works offline, with no other
//! server, and behind a Content-Security-Policy that allows nothing but this origin.
//!
//! The console is a client of the API like any other. It holds no credential of its own: it
//! calls the same routes, with the token its user signs in with, so it can do nothing that
//! curl with that token could not. Its files are therefore public, like `/openapi.json`.

use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::PathParam;
use super::responses::NotFound;

/// An embedded file of the console.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("console/", $name)),
        }
    };
}

const PAGE: Asset = asset!("index.html", "text/html; charset=utf-8");

/// Every file the page loads, by the name it is asked for under `/console/`.
const ASSETS: &[Asset] = &[
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("changes.js", "text/javascript; charset=utf-8"),
    asset!("check.js", "text/javascript; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("dom.js", "text/javascript; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("instance.js", "text/javascript; charset=utf-8"),
    asset!("keys.js", "text/javascript; charset=utf-8"),
    asset!("tenant.js", "text/javascript; charset=utf-8"),
    asset!("tenants.js", "text/javascript; charset=utf-8"),
    asset!("user.js", "text/javascript; charset=utf-8"),
];

/// Nothing but this origin's own files and API: no inline script or style, no other host, no
/// framing. A script injected into the page through some data shown in it could not run.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; \
     base-uri 'none'";

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    // The files change only with the binary: a tag of their content lets a browser keep them
    // and ask, each time, whether they are still current.
    let tag = fingerprint(asset.body);
    let fresh = current(request, &tag);
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::ETAG,
            HeaderValue::from_str(&tag).expect("hex digits in quotes"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    if fresh {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (headers, asset.body).into_response()
    }
}

/// Whether the request's If-None-Match names `tag`, the file's current tag. The comparison is
/// weak, as the header's is: a proxy that compresses the file may have made the tag weak
/// (`W/"..."`) on its way to the browser.
fn current(request: &HeaderMap, tag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|tags| tags.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag)
}

/// The tag of a file: the start of its SHA-256, the same for the same file in every build.
fn fingerprint(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!("\"{}\"", hex::encode(&digest[..12]))
}

#[utoipa::path(
    get,
    path = "/console",
    operation_id = "console",
    tag = "console",
    summary = "the web console",
    responses(
        (status = 200, description = "The console's page; it loads its modules from `/console/{asset}`", content_type = "text/html", body = String),
    )
)]
pub async fn page(request: HeaderMap) -> Response {
    serve(&PAGE, &request)
}

#[utoipa::path(
    get,
    path = "/console/{asset}",
    operation_id = "console_asset",
    tag = "console",
    summary = "a script, style sheet or image of the web console",
    params(("asset" = String, Path, description = "The file's name, as the page asks for it")),
    responses(
        (status = 200, description = "The file", content_type = "text/javascript", body = String),
        (status = 404, response = NotFound),
    )
)]
pub async fn asset(
    PathParam(name): PathParam<String>,
    request: HeaderMap,
) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .map(|asset| serve(asset, &request))
        .ok_or_else(|| ApiError::NotFound(format!("the console has no file '{name}'")))
}

/// `/console/` is the page's folder, not the page: its relative links would point one level
/// too deep. Relative, so that it holds behind a proxy that serves the API under a prefix.
pub async fn folder() -> Redirect {
    Redirect::permanent("../console")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_names_is_served() {
        let named: Vec<&str> = PAGE
            .body
            .split("console/")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert!(!named.is_empty());
        for name in named {
            assert!(
                ASSETS.iter().any(|asset| asset.name == name),
                "index.html loads console/{name}, which is not served"
            );
        }
    }

    #[test]
    fn a_tag_is_current_when_named_strong_or_weak_among_others() {
        let tag = fingerprint("body");
        let asked = |values: &[&str]| {
            let mut request = HeaderMap::new();
            for value in values {
                request.append(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
            }
            current(&request, &tag)
        };
        assert!(asked(&[&tag]));
        assert!(asked(&[&format!("W/{tag}")]));
        assert!(asked(&[&format!("\"other\", {tag}")]));
        assert!(asked(&["\"other\"", &tag]));
        assert!(asked(&["*"]));
        assert!(!asked(&[]));
        assert!(!asked(&["\"other\""]));
        assert!(!asked(&[&fingerprint("another body")]));
    }

    #[test]
    fn every_module_imported_is_served() {
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for line in asset.body.lines().filter(|l| l.starts_with("import ")) {
                let name = line
                    .split("'./")
                    .nth(1)
                    .and_then(|rest| rest.split('\'').next())
                    .unwrap_or_else(|| panic!("{}: an import not of './…': {line}", asset.name));
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "{} imports {name}, which is not served",
                    asset.name
                );
            }
        }
    }
}
