//! The searches: which subjects may do an action on a resource, on which resources of a type
//! a subject may do an action, and which actions a subject may do on a resource. Each page is
//! read from one snapshot, by the same listings as `/who-can`; a page's `next_token` resumes
//! after its last result, as the native cursors do.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::model::{self, ActionSearchRequest, PageRequest, SearchRequest, USER_TYPE, required};
use super::{AtRoot, Body, InTenant, TAG};
use crate::cache::Snapshot;
use crate::clock;
use crate::http::error::ApiError;
use crate::http::extract::MAX_BODY_BYTES;
use crate::http::listings::off_the_checks;
use crate::http::page::Paging;
use crate::http::state::AppState;
use crate::policy::{Page, TenantName, UserName};

/// A page of results.
#[derive(Serialize, ToSchema)]
pub struct SearchResponse {
    page: PageResponse,
    /// Sorted by id (subjects, resources) or name (actions).
    results: Vec<Found>,
}

#[derive(Serialize, ToSchema)]
pub struct PageResponse {
    /// Pass as `page.token` for the next page; an empty string on the last page.
    next_token: String,
    /// How many results this page holds.
    count: usize,
}

/// A subject or resource found (`type` and `id`), or an action (`name`).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Found {
    Entity {
        #[serde(rename = "type")]
        kind: String,
        id: String,
    },
    Action {
        name: String,
    },
}

/// Each search at a tenant's base URL and at the root.
macro_rules! search_routes {
    ($($name:ident, $root:ident, $what:literal, $summary:literal, $request:ty, $run:ident;)*) => {$(
        #[utoipa::path(
            post,
            path = concat!("/tenants/{tenant}/access/v1/search/", $what),
            tag = TAG,
            summary = $summary,
            params(("tenant" = String, Path, description = "The tenant: the policy decision point")),
            request_body = $request,
            security(("bearer" = [])),
            responses((status = 200, description = "A page of results", body = SearchResponse))
        )]
        pub async fn $name(
            State(state): State<AppState>,
            InTenant(tenant): InTenant,
            Body(body): Body<MAX_BODY_BYTES>,
        ) -> Result<Json<SearchResponse>, ApiError> {
            $run(&state, &tenant, model::parse(&body)?).await.map(Json)
        }

        #[utoipa::path(
            post,
            path = concat!("/access/v1/search/", $what),
            tag = TAG,
            summary = concat!($summary, ", for the tenant of the credential, or the default tenant"),
            request_body = $request,
            security(("bearer" = [])),
            responses((status = 200, description = "A page of results", body = SearchResponse))
        )]
        pub async fn $root(
            State(state): State<AppState>,
            AtRoot(tenant): AtRoot,
            Body(body): Body<MAX_BODY_BYTES>,
        ) -> Result<Json<SearchResponse>, ApiError> {
            $run(&state, &tenant, model::parse(&body)?).await.map(Json)
        }
    )*};
}

search_routes! {
    subject, subject_at_root, "subject",
        "the subjects of a type that may do an action on a resource", SearchRequest, subjects;
    resource, resource_at_root, "resource",
        "the resources of a type on which a subject may do an action", SearchRequest, resources;
    action, action_at_root, "action",
        "the actions a subject may do on a resource", ActionSearchRequest, actions;
}

/// Subjects of `subject.type`: users for the type `user`, else the users named `<type>/<id>`.
async fn subjects(
    state: &AppState,
    tenant: &TenantName,
    request: SearchRequest,
) -> Result<SearchResponse, ApiError> {
    let kind = required(request.subject.as_ref(), "subject")?
        .kind("subject")?
        .to_owned();
    let resource = required(request.resource.as_ref(), "resource")?.resource()?;
    let action = required(request.action.as_ref(), "action")?
        .name()?
        .to_owned();
    let within = if kind == USER_TYPE {
        String::new()
    } else {
        format!("{kind}/")
    };
    let scope = ["search/subject", tenant.as_str(), &kind, &resource, &action];
    let found = |user: String| Found::Entity {
        kind: kind.clone(),
        id: user[within.len()..].to_owned(),
    };
    let list = {
        let (resource, action, within) = (resource.clone(), action.clone(), within.clone());
        move |snapshot: Arc<Snapshot>, after: Option<String>, limit| {
            let policy = &snapshot.policy;
            policy.who_can(
                &resource,
                &action,
                &within,
                after.as_deref(),
                limit,
                clock::now(),
            )
        }
    };
    search(state, tenant, &scope, request.page, true, list, found).await
}

/// Resources of `resource.type` on which the subject may do the action.
async fn resources(
    state: &AppState,
    tenant: &TenantName,
    request: SearchRequest,
) -> Result<SearchResponse, ApiError> {
    let user = required(request.subject.as_ref(), "subject")?
        .user()?
        .into_owned();
    let action = required(request.action.as_ref(), "action")?
        .name()?
        .to_owned();
    let kind = required(request.resource.as_ref(), "resource")?
        .kind("resource")?
        .to_owned();
    let within = format!("{kind}/");
    let scope = ["search/resource", tenant.as_str(), &user, &action, &kind];
    let found = |id: String| Found::Entity {
        kind: kind.clone(),
        id,
    };
    let list = {
        let (user, action) = (user.clone(), action.clone());
        move |snapshot: Arc<Snapshot>, after: Option<String>, limit| {
            let (policy, now) = (&snapshot.policy, clock::now());
            policy.resources_within(&user, &action, &within, after.as_deref(), limit, now)
        }
    };
    search(state, tenant, &scope, request.page, false, list, found).await
}

/// Actions the subject may do on the resource.
async fn actions(
    state: &AppState,
    tenant: &TenantName,
    request: ActionSearchRequest,
) -> Result<SearchResponse, ApiError> {
    let user = required(request.subject.as_ref(), "subject")?
        .user()?
        .into_owned();
    let resource = required(request.resource.as_ref(), "resource")?.resource()?;
    let scope = ["search/action", tenant.as_str(), &user, &resource];
    let list = {
        let (user, resource) = (user.clone(), resource.clone());
        move |snapshot: Arc<Snapshot>, after: Option<String>, limit| {
            (snapshot.policy).actions_on(&user, &resource, after.as_deref(), limit, clock::now())
        }
    };
    let found = |name| Found::Action { name };
    search(state, tenant, &scope, request.page, false, list, found).await
}

/// What every search does: reads the tenant, lists the page after the token's item on a
/// blocking thread, and makes the token of the next page from the page's last item. `users`
/// says the items are user names, which a token must then hold a valid one of.
async fn search(
    state: &AppState,
    tenant: &TenantName,
    scope: &[&str],
    page: Option<PageRequest>,
    users: bool,
    list: impl FnOnce(Arc<Snapshot>, Option<String>, usize) -> Page<String> + Send + 'static,
    found: impl Fn(String) -> Found,
) -> Result<SearchResponse, ApiError> {
    let page = page.unwrap_or_default();
    let mut paging = Paging::from_token(scope, page.limit, page.token.as_deref(), |[last]| {
        if users {
            UserName::validate("page.token", last)?;
        }
        Ok::<_, crate::policy::NameError>(last.to_owned())
    })?;
    let snapshot = state.app.read(tenant, None).await?;
    let (after, limit) = (paging.after.take(), paging.limit);
    let listed = off_the_checks(move || list(snapshot, after, limit)).await?;
    let next_token = paging
        .next_cursor(&listed, |last| [last.as_str()])
        .unwrap_or_default();
    Ok(SearchResponse {
        page: PageResponse {
            next_token,
            count: listed.items.len(),
        },
        results: listed.items.into_iter().map(found).collect(),
    })
}
