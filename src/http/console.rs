//! The web console at `/console`: one page, its modules and its style sheet, compiled into
//! the binary and served as they are, so that the console works offline, with no other
//! server, and behind a Content-Security-Policy that allows nothing but this origin.
//!
//! The console is a client of the API like any other. It holds no credential of its own: it
//! calls the same routes, with the token its user signs in with, so it can do nothing that
//! curl with that token could not. Its files are therefore public, like `/openapi.json`.

use std::sync::OnceLock;

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
    body: &'static str,
    /// Its tag, worked out the first time it is served.
    tag: OnceLock<String>,
}

macro_rules! asset {
    ($name:literal) => {
        Asset {
            name: $name,
            body: include_str!(concat!("console/", $name)),
            tag: OnceLock::new(),
        }
    };
}

static PAGE: Asset = asset!("index.html");

/// Every file the page loads, by the name it is asked for under `/console/`.
static ASSETS: [Asset; 12] = [
    asset!("api.js"),
    asset!("app.js"),
    asset!("changes.js"),
    asset!("check.js"),
    asset!("console.css"),
    asset!("dom.js"),
    asset!("icon.svg"),
    asset!("instance.js"),
    asset!("keys.js"),
    asset!("tenant.js"),
    asset!("tenants.js"),
    asset!("user.js"),
];

impl Asset {
    /// Its type, by its name's extension: the console has files of four kinds.
    fn content_type(&self) -> &'static str {
        match self.name.rsplit('.').next() {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            _ => unreachable!("an embedded file of a kind content_type does not know"),
        }
    }

    /// The files change only with the binary: a tag of their content, the start of its
    /// SHA-256, lets a browser keep them and ask, each time, whether they are still current.
    fn tag(&self) -> &str {
        self.tag.get_or_init(|| {
            let digest = Sha256::digest(self.body.as_bytes());
            format!("\"{}\"", hex::encode(&digest[..12]))
        })
    }
}

/// Nothing but this origin's own files and API: no inline script or style, no other host, no
/// framing. A script injected into the page through some data shown in it could not run.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; \
     base-uri 'none'";

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let tag = asset.tag();
    let fresh = current(request, tag);
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type()),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::ETAG,
            HeaderValue::from_str(tag).expect("hex digits in quotes"),
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
        let tag = PAGE.tag();
        let asked = |values: &[&str]| {
            let mut request = HeaderMap::new();
            for value in values {
                request.append(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
            }
            current(&request, tag)
        };
        assert!(asked(&[tag]));
        assert!(asked(&[&format!("W/{tag}")]));
        assert!(asked(&[&format!("\"other\", {tag}")]));
        assert!(asked(&["\"other\"", tag]));
        assert!(asked(&["*"]));
        assert!(!asked(&[]));
        assert!(!asked(&["\"other\""]));
        assert!(!asked(&[ASSETS[0].tag()]));
    }

    #[test]
    fn every_file_has_a_type_and_a_tag_of_its_own() {
        let mut tags: Vec<&str> = ASSETS.iter().chain([&PAGE]).map(Asset::tag).collect();
        for asset in ASSETS.iter().chain([&PAGE]) {
            assert!(!asset.content_type().is_empty());
            assert!(std::ptr::eq(asset.tag(), asset.tag()), "worked out once");
        }
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len() + 1);
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
