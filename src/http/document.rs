//! A tenant's policy as one document: `GET /tenant-policy` exports it, every group with its
//! permissions, members (and when their memberships end) and the groups it is nested in, at
//! one revision; `PUT /tenant-policy` makes a tenant hold what a document describes.
//!
//! An export is written group by group as the client reads it, from the one snapshot: a
//! tenant of a million memberships is never copied whole into a second structure, nor into
//! one string. Documents are JSON, or YAML when the request says so.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{MapOnly, QueryParams, body_of};
use super::responses::WriteRefused;
use super::state::AppState;
use super::timestamp::instant;
use super::writes::{self, WriteChange};
use std::sync::Arc;

use crate::app::AppError;
use crate::policy::{Desired, DesiredGroup, GroupName, GroupView, TenantName, UserName};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DocumentQuery {
    tenant: String,
    #[serde(default)]
    min_revision: Option<u64>,
}

/// A whole tenant.
#[derive(Serialize, ToSchema)]
pub struct PolicyDocument {
    tenant: String,
    /// The revision the document was read at.
    revision: u64,
    /// Every group, sorted by name.
    groups: Vec<GroupDocument>,
}

/// A group, whole. In a document sent, the lists may be left out when empty, and come in
/// any order.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupDocument {
    name: String,
    /// Sorted by resource, then action.
    #[serde(default)]
    #[schema(value_type = Vec<PermissionDocument>)]
    permissions: Vec<MapOnly<PermissionDocument>>,
    /// Sorted by user.
    #[serde(default)]
    #[schema(value_type = Vec<MemberDocument>)]
    members: Vec<MapOnly<MemberDocument>>,
    /// The groups it is nested in, sorted; each a group of the document.
    #[serde(default)]
    parents: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionDocument {
    resource: String,
    action: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberDocument {
    user: String,
    /// When the membership ends, if it does: RFC 3339 (an export gives UTC, to the
    /// millisecond).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

impl From<GroupView> for GroupDocument {
    fn from(view: GroupView) -> Self {
        let mut endings = view.endings.into_iter().peekable();
        let members = view
            .members
            .into_iter()
            .map(|user| {
                // Both are sorted by user: the end of a member's membership, if any, is next.
                let end = endings
                    .next_if(|(ending, _)| *ending == user)
                    .map(|(_, end)| instant(end));
                MapOnly(MemberDocument {
                    user,
                    expires_at: end,
                })
            })
            .collect();
        Self {
            name: view.name,
            permissions: view
                .permissions
                .into_iter()
                .map(|(resource, action)| MapOnly(PermissionDocument { resource, action }))
                .collect(),
            members,
            parents: view.parents,
        }
    }
}

#[utoipa::path(
    get,
    path = "/tenant-policy",
    tag = "reads",
    summary = "a whole tenant as one document, at one revision",
    params(DocumentQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every group, whole, written as it is read: YAML when the \
            request's `Accept` names `application/yaml`, JSON otherwise",
            content(
                (PolicyDocument = "application/json"),
                (PolicyDocument = "application/yaml"),
            )),
    )
)]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(query): QueryParams<DocumentQuery>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant("tenant", &query.tenant)?;
    let format = Format::accepted(&headers);
    let snapshot = state.app.read(&tenant, query.min_revision).await?;
    let names = snapshot.policy.group_names();
    let opening = format.opening(&tenant, snapshot.revision(), names.is_empty());
    let views = names
        .into_iter()
        .filter_map(move |name| snapshot.policy.group_view(&name));
    let groups = futures_util::stream::iter(views.enumerate())
        .map(move |(at, view)| Ok::<_, Infallible>(format.group(view, at)));
    let body = futures_util::stream::once(async move { Ok(opening) })
        .chain(groups)
        .chain(futures_util::stream::once(
            async move { Ok(format.closing()) },
        ));
    Ok((
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from_stream(body),
    )
        .into_response())
}

/// A document to apply: an export, as it is or edited, and how to apply it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// The tenant to make hold what the document describes. To copy one tenant to another,
    /// change this field of the first's export.
    tenant: String,
    /// What an export says it was read at. Not a condition (that is `if_revision`), so that
    /// an export can be applied as it is.
    #[serde(default, rename = "revision")]
    #[schema(value_type = Option<u64>)]
    _exported_at: Option<u64>,
    /// Every group the tenant is to have, whole; a group held but not listed is deleted.
    /// Names of groups may not repeat, nor the permissions, members or parents of a group.
    #[schema(value_type = Vec<GroupDocument>)]
    groups: Vec<MapOnly<GroupDocument>>,
    /// Work out the difference and answer it, changing nothing.
    #[serde(default)]
    dry_run: bool,
    /// Apply only if the tenant is at this revision (`409 revision_mismatch` otherwise, and
    /// nothing is written); on a dry run, work the difference out from this revision.
    #[serde(default)]
    if_revision: Option<u64>,
}

/// What applying a document did, or on a dry run would do.
#[derive(Serialize, ToSchema)]
pub struct AppliedResponse {
    success: bool,
    dry_run: bool,
    /// Whether the tenant changed; its revision moved by one if so. Never on a dry run.
    changed: bool,
    /// The revision the tenant is at after the write; on a dry run, the one the difference
    /// was worked out from (send it as `if_revision` to apply exactly that difference).
    revision: u64,
    /// How many changes of each operation the difference holds: `{"assign-user": 3}`.
    counts: BTreeMap<&'static str, usize>,
    /// On a dry run, the difference: the changes, in the format and order of `POST /write`,
    /// that would make the tenant hold what the document describes. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<Vec<WriteChange>>,
}

#[utoipa::path(
    put,
    path = "/tenant-policy",
    tag = "writes",
    summary = "make a tenant hold what a document describes, as one write, or preview the difference",
    request_body(
        description = "The document, as `GET /tenant-policy` gives it, with `dry_run` and \
            `if_revision` if wanted; JSON, or YAML with `Content-Type: application/yaml`. At \
            most `POLICY_MAX_BYTES` (16 MiB by default).",
        content(
            (ApplyRequest = "application/json"),
            (ApplyRequest = "application/yaml"),
        )
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant holds what the document describes (or, on a \
            dry run, what it would take)", body = AppliedResponse),
        (status = 409, response = WriteRefused),
    )
)]
pub async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    PolicyBody(request): PolicyBody,
) -> Result<Json<AppliedResponse>, ApiError> {
    let tenant = caller.tenant("tenant", &request.tenant)?;
    let applied = state
        .app
        .apply_document(
            &tenant,
            Arc::new(request.desired),
            request.if_revision,
            request.dry_run,
            caller.actor(),
            super::request::write_begun,
        )
        .await?;
    Ok(Json(AppliedResponse {
        success: true,
        dry_run: request.dry_run,
        changed: applied.changed,
        revision: applied.revision,
        counts: (applied.counts.iter())
            .map(|&(operation, count)| (operation.as_str(), count))
            .collect(),
        changes: request
            .dry_run
            .then(|| applied.changes.iter().map(WriteChange::from).collect()),
    }))
}

/// The document's groups as the policy takes them, every name checked; an error says where
/// in the document it is.
fn desired(groups: Vec<MapOnly<GroupDocument>>) -> Result<Desired, ApiError> {
    let mut desired = Desired::default();
    // Every parent named, with its place: each must be a group of the document.
    let mut parents: Vec<(String, GroupName)> = Vec::new();
    for (at, MapOnly(document)) in groups.into_iter().enumerate() {
        let place = |within: &str| format!("groups[{at}]{within}");
        let name = GroupName::parse("name", &document.name)
            .map_err(|e| ApiError::from(e).at(&place("")))?;
        let mut group = DesiredGroup::default();
        for (i, MapOnly(permission)) in document.permissions.into_iter().enumerate() {
            let here = || place(&format!(".permissions[{i}]"));
            let permission = writes::permission(&permission.resource, &permission.action)
                .map_err(|e| e.at(&here()))?;
            if !group.permissions.insert(permission) {
                return Err(twice(&here(), "the permission"));
            }
        }
        for (i, MapOnly(member)) in document.members.into_iter().enumerate() {
            let here = || place(&format!(".members[{i}]"));
            let user =
                UserName::parse("user", &member.user).map_err(|e| ApiError::from(e).at(&here()))?;
            let end = writes::end(member.expires_at.as_deref()).map_err(|e| e.at(&here()))?;
            if group.members.insert(user, end).is_some() {
                return Err(twice(&here(), "the member"));
            }
        }
        for (i, parent) in document.parents.iter().enumerate() {
            let here = place(&format!(".parents[{i}]"));
            let parent =
                GroupName::parse("parents", parent).map_err(|e| ApiError::from(e).at(&here))?;
            parents.push((here.clone(), parent.clone()));
            if !group.parents.insert(parent) {
                return Err(twice(&here, "the parent"));
            }
        }
        if desired.groups.insert(name.clone(), group).is_some() {
            return Err(twice(&place(""), &format!("group '{name}'")));
        }
    }
    // In the document's order, so that the first one named is the first one written.
    if let Some((place, parent)) =
        (parents.into_iter()).find(|(_, p)| !desired.groups.contains_key(p))
    {
        return Err(ApiError::InvalidRequest(format!(
            "group '{parent}' is not a group of the document"
        ))
        .at(&place));
    }
    Ok(desired)
}

fn twice(place: &str, what: &str) -> ApiError {
    ApiError::InvalidRequest(format!("{what} is listed twice")).at(place)
}

/// A document sent to `PUT /tenant-policy`, read whole (up to `POLICY_MAX_BYTES`) and parsed
/// as the request's `Content-Type` says, with every name checked.
pub struct PolicyBody(Parsed);

/// What a document asks for.
pub struct Parsed {
    tenant: String,
    desired: Desired,
    dry_run: bool,
    if_revision: Option<u64>,
}

impl FromRequest<AppState> for PolicyBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let format = Format::sent(req.headers()).ok_or(ApiError::UnsupportedMediaType(
            "JSON with `Content-Type: application/json`, or YAML with `Content-Type: \
             application/yaml`",
        ))?;
        let body = body_of(req, state, state.policy_max_bytes).await?;
        // Megabytes of text and a name check per member: off the threads that serve requests.
        let parse = move || {
            let MapOnly(request) = format.parse(&body)?;
            Ok::<_, ApiError>(Parsed {
                tenant: request.tenant,
                desired: desired(request.groups)?,
                dry_run: request.dry_run,
                if_revision: request.if_revision,
            })
        };
        let parsed = tokio::task::spawn_blocking(parse)
            .await
            .map_err(|e| ApiError::from(AppError::Task(e)))??;
        Ok(Self(parsed))
    }
}

/// How a document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Yaml,
}

impl Format {
    /// YAML when `Accept` names it (and not with `q=0`, which refuses it), JSON otherwise.
    fn accepted(headers: &HeaderMap) -> Self {
        let refused = |range: &str| {
            range.split(';').skip(1).any(|parameter| {
                let (name, value) = parameter.split_once('=').unwrap_or_default();
                name.trim().eq_ignore_ascii_case("q")
                    && value.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            })
        };
        let yaml = (headers.get_all(header::ACCEPT).iter())
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|range| Self::of_media_type(range) == Some(Format::Yaml) && !refused(range));
        if yaml { Format::Yaml } else { Format::Json }
    }

    /// What the body's `Content-Type` says it is, if JSON or YAML.
    fn sent(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        Self::of_media_type(value)
    }

    fn of_media_type(value: &str) -> Option<Self> {
        let essence = value.split(';').next().unwrap_or_default().trim();
        let (kind, subtype) = essence.split_once('/')?;
        let subtype = subtype.to_ascii_lowercase();
        match kind.to_ascii_lowercase().as_str() {
            "application" if subtype == "json" || subtype.ends_with("+json") => Some(Format::Json),
            "application" | "text" if subtype == "yaml" || subtype == "x-yaml" => {
                Some(Format::Yaml)
            }
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Yaml => "application/yaml",
        }
    }

    fn parse(self, body: &[u8]) -> Result<MapOnly<ApplyRequest>, ApiError> {
        match self {
            Format::Json => serde_json::from_slice(body)
                .map_err(|e| ApiError::InvalidRequest(format!("invalid JSON body: {e}"))),
            Format::Yaml => {
                // Every event and node of a document takes at least a byte of it; aliases
                // may repeat what they name, but no more than the document holds again.
                let most = body.len().max(1024);
                let options = serde_saphyr::options! {
                    // One line, like every other error's message.
                    with_snippet: false,
                    budget: serde_saphyr::budget! {
                        max_documents: 1,
                        max_events: most,
                        max_nodes: most,
                        max_total_scalar_bytes: most,
                        max_recorded_anchor_events: most,
                        max_recorded_anchor_bytes: most,
                    },
                };
                serde_saphyr::from_slice_with_options(body, options).map_err(yaml_refused)
            }
        }
    }

    /// The document up to its first group.
    fn opening(self, tenant: &TenantName, revision: u64, no_groups: bool) -> Bytes {
        match self {
            Format::Json => Bytes::from(format!(
                "{{\"tenant\":{},\"revision\":{revision},\"groups\":[",
                serde_json::Value::from(tenant.as_str()),
            )),
            Format::Yaml => {
                #[derive(Serialize)]
                struct Opening<'a> {
                    tenant: &'a str,
                    revision: u64,
                }
                let mut opening = yaml(&Opening {
                    tenant: tenant.as_str(),
                    revision,
                });
                opening.push_str(if no_groups {
                    "groups: []\n"
                } else {
                    "groups:\n"
                });
                Bytes::from(opening)
            }
        }
    }

    /// One group of the document, with what separates it from the one before.
    fn group(self, view: GroupView, at: usize) -> Bytes {
        let group = GroupDocument::from(view);
        match self {
            Format::Json => {
                let mut chunk = if at == 0 { Vec::new() } else { vec![b','] };
                // Strings and arrays of them: nothing that fails to serialize.
                let _ = serde_json::to_writer(&mut chunk, &group);
                Bytes::from(chunk)
            }
            // An item of the top level's `groups:`.
            Format::Yaml => Bytes::from(yaml(&[group])),
        }
    }

    fn closing(self) -> Bytes {
        match self {
            Format::Json => Bytes::from_static(b"]}"),
            Format::Yaml => Bytes::new(),
        }
    }
}

/// Why a YAML body is refused, in the API's words where the parser's would name its own
/// settings.
fn yaml_refused(error: serde_saphyr::Error) -> ApiError {
    use serde_saphyr::budget::BudgetBreach;
    let message = match &error {
        serde_saphyr::Error::Budget { breach, location } => {
            let what = match breach {
                BudgetBreach::Documents { .. } => "a YAML body must be one document",
                _ => "the YAML body expands to more than it holds (its aliases repeat too much)",
            };
            format!(
                "{what}, at line {}, column {}",
                location.line(),
                location.column()
            )
        }
        other => other.to_string(),
    };
    ApiError::InvalidRequest(format!("invalid YAML body: {message}"))
}

/// `value` as YAML: strings, numbers and lists of them, which always serialize.
fn yaml(value: &impl Serialize) -> String {
    serde_saphyr::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> Format {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        Format::accepted(&headers)
    }

    #[test]
    fn yaml_is_written_when_accept_names_it_and_does_not_refuse_it() {
        assert_eq!(accepting("application/yaml"), Format::Yaml);
        assert_eq!(accepting("text/html, application/yaml;q=0.5"), Format::Yaml);
        assert_eq!(accepting("Application/X-YAML"), Format::Yaml);
        assert_eq!(accepting("application/yaml;q=0"), Format::Json);
        assert_eq!(accepting("application/yaml; q=0.0, */*"), Format::Json);
        assert_eq!(accepting("application/json"), Format::Json);
        assert_eq!(accepting("*/*"), Format::Json);
        assert_eq!(Format::accepted(&HeaderMap::new()), Format::Json);
    }
}
