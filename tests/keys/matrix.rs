//! Which credential reaches which route and which tenant, on every endpoint.

use super::*;

// ---------------------------------------------------------------------------------------------
// The routes, and who may call them
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guard {
    /// The seven write routes: an admin credential for the tenant.
    Write,
    /// Reads of one tenant: any credential for the tenant.
    Read,
    /// /cache-stats and /metrics: any credential for every tenant.
    Instance,
    /// /tenants: an admin credential for every tenant.
    Administer,
    /// The API-key endpoints: ADMIN_TOKEN only.
    Keys,
}

/// A route with a valid request. Write requests are chosen so that one let in by mistake would
/// change the store: a new group, permission or member, or a seeded one removed.
struct Route {
    guard: Guard,
    method: Method,
    path: &'static str,
    fields: Value,
}

impl Route {
    /// The request, aimed at `tenant` if the route names one.
    fn call(&self, tenant: &str) -> Call {
        let mut fields = self.fields.clone();
        if matches!(self.guard, Guard::Write | Guard::Read) {
            fields["tenant"] = json!(tenant);
        }
        Call {
            method: self.method.clone(),
            path: self.path,
            payload: Payload::Fields(fields),
        }
    }

    /// The tenants to aim the route at: both for routes that name one, else just one.
    fn tenants(&self) -> &'static [&'static str] {
        match self.guard {
            Guard::Write | Guard::Read => &["acme", "globex"],
            Guard::Instance | Guard::Administer | Guard::Keys => &["-"],
        }
    }
}

/// Every route but /health and /ready. `revocable` is the id /revoke-api-key names.
fn routes(revocable: &str) -> Vec<Route> {
    let route = |guard, method, path, fields| Route {
        guard,
        method,
        path,
        fields,
    };
    use Guard::*;
    vec![
        route(
            Write,
            Method::POST,
            "/create-group",
            json!({"group": "intruders"}),
        ),
        route(
            Write,
            Method::POST,
            "/delete-group",
            json!({"group": "spare"}),
        ),
        route(
            Write,
            Method::POST,
            "/add-permission",
            json!({"group": "g", "resource": "secrets/*", "action": "*"}),
        ),
        route(
            Write,
            Method::POST,
            "/remove-permission",
            json!({"group": "g", "resource": "docs/a", "action": "read"}),
        ),
        route(
            Write,
            Method::POST,
            "/assign-user",
            json!({"user": "mallory", "group": "g"}),
        ),
        route(
            Write,
            Method::POST,
            "/unassign-user",
            json!({"user": "alice", "group": "g"}),
        ),
        route(Write, Method::POST, "/refresh-tenant", json!({})),
        route(
            Read,
            Method::GET,
            "/check-access",
            json!({"user": "alice", "resource": "docs/a", "action": "read"}),
        ),
        route(
            Read,
            Method::POST,
            "/check-access",
            json!({"user": "alice", "resource": "docs/a", "action": "read"}),
        ),
        route(Read, Method::GET, "/groups", json!({})),
        route(
            Read,
            Method::GET,
            "/group-permissions",
            json!({"group": "g"}),
        ),
        route(Read, Method::GET, "/group-members", json!({"group": "g"})),
        route(
            Read,
            Method::GET,
            "/user-permissions",
            json!({"user": "alice"}),
        ),
        route(Read, Method::GET, "/changes", json!({})),
        route(Administer, Method::GET, "/tenants", json!({})),
        route(Instance, Method::GET, "/cache-stats", json!({})),
        route(Instance, Method::GET, "/metrics", json!({})),
        route(
            Keys,
            Method::POST,
            "/create-api-key",
            json!({"tenant": "acme", "role": "admin"}),
        ),
        route(
            Keys,
            Method::POST,
            "/revoke-api-key",
            json!({"id": revocable}),
        ),
        route(Keys, Method::GET, "/api-keys", json!({})),
    ]
}

/// A valid credential, as the server should see it.
struct Credential {
    label: &'static str,
    bearer: String,
    admin: bool,
    /// None: every tenant.
    tenant: Option<&'static str>,
    /// ADMIN_TOKEN itself, the only credential that manages keys.
    admin_token: bool,
}

/// What docs/API.md's Authentication section says `credential` may do on `route` for
/// `tenant`, with both ADMIN_TOKEN and CHECK_TOKEN set.
fn allowed(credential: &Credential, guard: Guard, tenant: &str) -> bool {
    let reaches = credential.tenant.is_none_or(|own| own == tenant);
    match guard {
        Guard::Write => credential.admin && reaches,
        Guard::Read => reaches,
        Guard::Instance => credential.tenant.is_none(),
        Guard::Administer => credential.admin && credential.tenant.is_none(),
        Guard::Keys => credential.admin_token,
    }
}

/// A tenant with group `g` (`docs/a` + `read`, member `alice`) and an empty group `spare`, at
/// revision 4.
async fn seed(node: &Instance, tenant: &str) {
    node.create_group(tenant, "g").await;
    node.add_permission(tenant, "g", "docs/a", "read").await;
    node.assign_user(tenant, "alice", "g").await;
    node.create_group(tenant, "spare").await;
}

/// What a read let in must answer for the seeded tenant `tenant`, if it does not.
fn read_mismatch(path: &str, tenant: &str, reply: &Reply) -> Option<String> {
    if reply.status != StatusCode::OK {
        return Some(format!("{} {}", reply.status, reply.text));
    }
    let ok = match path {
        "/metrics" => reply.text.contains("rbac_key_reloads_total"),
        _ => {
            let body = reply.body();
            match path {
                "/check-access" => body == json!({"allowed": true, "revision": 4}),
                "/groups" => {
                    body["tenant"] == tenant && body["groups"].as_array().unwrap().len() == 2
                }
                "/group-permissions" => {
                    body["group"] == "g" && body["permissions"].as_array().unwrap().len() == 1
                }
                "/group-members" => body["group"] == "g" && body["members"] == json!(["alice"]),
                "/user-permissions" => body["groups"] == json!(["g"]),
                "/changes" => {
                    body["tenant"] == tenant
                        && body["revision"] == 4
                        && body["changes"].as_array().unwrap().len() == 4
                }
                "/cache-stats" => body["api_keys"].is_u64() && body["key_reloads"].is_u64(),
                "/tenants" => {
                    let listed: Vec<&Value> = body["tenants"].as_array().unwrap().iter().collect();
                    listed
                        == [
                            &json!({"name": "acme", "revision": 4, "group_count": 2,
                                    "permission_count": 1, "assignment_count": 1}),
                            &json!({"name": "globex", "revision": 4, "group_count": 2,
                                    "permission_count": 1, "assignment_count": 1}),
                        ]
                        && body["next_cursor"].is_null()
                }
                other => unreachable!("{other} is not a read"),
            }
        }
    };
    (!ok).then(|| format!("unexpected answer: {}", reply.text))
}

/// The seven writes, each of which must succeed with `credential` on `tenant` and change it,
/// leaving the seeded state as it found it: six changes, and a refresh.
async fn writes_succeed(node: &Instance, credential: &str, tenant: &str) -> Vec<String> {
    let steps = [
        ("/create-group", json!({"group": "h"}), 201, "created"),
        (
            "/add-permission",
            json!({"group": "h", "resource": "r", "action": "a"}),
            200,
            "changed",
        ),
        (
            "/assign-user",
            json!({"user": "bob", "group": "h"}),
            200,
            "changed",
        ),
        (
            "/unassign-user",
            json!({"user": "bob", "group": "h"}),
            200,
            "changed",
        ),
        (
            "/remove-permission",
            json!({"group": "h", "resource": "r", "action": "a"}),
            200,
            "changed",
        ),
        ("/delete-group", json!({"group": "h"}), 200, "changed"),
        ("/refresh-tenant", json!({}), 200, "success"),
    ];
    let mut failures = Vec::new();
    for (path, mut fields, status, flag) in steps {
        fields["tenant"] = json!(tenant);
        let reply = send(node, &Call::post(path, fields.clone()), Some(credential)).await;
        if reply.status.as_u16() != status || reply.body()[flag] != true {
            failures.push(format!(
                "POST {path} {fields}: {} {}",
                reply.status, reply.text
            ));
        }
    }
    failures
}

// ---------------------------------------------------------------------------------------------
// 1. Every route, every kind of credential
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_route_lets_in_exactly_the_credentials_that_reach_it_and_refusals_change_nothing() {
    let cluster = Cluster::start_with(1, &BOTH_TOKENS).await;
    let node = &cluster[0];
    seed(node, "acme").await;
    seed(node, "globex").await;
    let acme_admin = create_key(node, "acme", "admin").await;
    let acme_check = create_key(node, "acme", "check").await;
    let all_admin = create_key(node, "*", "admin").await;
    let all_check = create_key(node, "*", "check").await;
    // What /revoke-api-key names: revoking it by mistake shows in the store.
    let revocable = create_key(node, "acme", "check").await;
    let revoked = create_key(node, "*", "admin").await;
    assert_eq!(revoke(node, &revoked.id).await["revoked"], true);

    let credential = |label, key: &Key, admin, tenant| Credential {
        label,
        bearer: key.token.clone(),
        admin,
        tenant,
        admin_token: false,
    };
    let credentials = [
        credential("an admin key for acme", &acme_admin, true, Some("acme")),
        credential("a check key for acme", &acme_check, false, Some("acme")),
        credential("an admin key for every tenant", &all_admin, true, None),
        credential("a check key for every tenant", &all_check, false, None),
        Credential {
            label: "CHECK_TOKEN",
            bearer: CHECKER.into(),
            admin: false,
            tenant: None,
            admin_token: false,
        },
        Credential {
            label: "ADMIN_TOKEN",
            bearer: ADMIN.into(),
            admin: true,
            tenant: None,
            admin_token: true,
        },
    ];
    let routes = routes(&revocable.id);
    let strangers = not_in_force(&all_admin, &revoked);

    // GET /credential tells each credential what this matrix finds it may do.
    let whoami = Call::get("/credential", json!({}));
    for credential in &credentials {
        let reply = send(node, &whoami, Some(&credential.bearer)).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}: {}",
            credential.label,
            reply.text
        );
        let body = reply.body();
        let tenant = credential.tenant.unwrap_or("acme");
        let expected = json!({
            "write": allowed(credential, Guard::Write, tenant),
            "read": allowed(credential, Guard::Read, tenant),
            "list_tenants": allowed(credential, Guard::Administer, "-"),
            "view_instance": allowed(credential, Guard::Instance, "-"),
            "manage_keys": allowed(credential, Guard::Keys, "-"),
        });
        assert_eq!(body["may"], expected, "{}: {body}", credential.label);
        assert_eq!(
            body["credential"]["tenant"],
            credential.tenant.unwrap_or("*")
        );
        let role = if credential.admin { "admin" } else { "check" };
        assert_eq!(body["credential"]["role"], role, "{}", credential.label);
    }
    for (label, bearer) in &strangers {
        let reply = send(node, &whoami, bearer.as_deref()).await;
        if bearer.is_some() {
            assert!(
                error_mismatch(&reply, 401, "unauthorized").is_none(),
                "{label}: {}",
                reply.text
            );
            continue;
        }
        let nothing = json!({"write": false, "read": false, "list_tenants": false,
                             "view_instance": false, "manage_keys": false});
        assert_eq!(
            reply.body(),
            json!({"credential": null, "may": nothing}),
            "{label}"
        );
    }
    let before = common::stored_rows(&cluster.database_url).await;

    // Refusals: every route with every credential not in force (401), and every valid
    // credential on every route and tenant it does not reach (403).
    let mut failures = Vec::new();
    let mut total = 0;
    for route in &routes {
        for tenant in route.tenants() {
            let call = route.call(tenant);
            for (label, bearer) in &strangers {
                total += 1;
                let reply = send(node, &call, bearer.as_deref()).await;
                if let Some(problem) = error_mismatch(&reply, 401, "unauthorized") {
                    failures.push(format!("{} with {label}: {problem}", call.label()));
                }
            }
            for credential in &credentials {
                if allowed(credential, route.guard, tenant) {
                    continue;
                }
                total += 1;
                let reply = send(node, &call, Some(&credential.bearer)).await;
                if let Some(problem) = error_mismatch(&reply, 403, "forbidden") {
                    failures.push(format!(
                        "{} with {}: {problem}",
                        call.label(),
                        credential.label
                    ));
                }
            }
        }
    }

    // The order of the checks: the credential, then the body, then the tenant name, then
    // whether the credential reaches the tenant, then the other names.
    let truncated = "{\"tenant\":";
    let checker = CHECKER.to_string();
    let ordered = [
        (
            Call::raw("/create-group", truncated, "application/json"),
            None,
            (401, "unauthorized"),
        ),
        (
            Call::raw("/create-group", truncated, "application/json"),
            Some(&acme_check.token),
            (403, "forbidden"),
        ),
        (
            Call::raw("/create-group", "{}", "text/plain"),
            Some(&acme_check.token),
            (403, "forbidden"),
        ),
        (
            Call::raw("/create-group", truncated, "application/json"),
            Some(&acme_admin.token),
            (400, "invalid_request"),
        ),
        (
            Call::post(
                "/create-group",
                json!({"tenant": "globex", "group": "x", "extra": 1}),
            ),
            Some(&acme_admin.token),
            (400, "invalid_request"),
        ),
        (
            Call::post("/create-group", json!({"tenant": "", "group": "x"})),
            Some(&acme_admin.token),
            (400, "invalid_request"),
        ),
        (
            Call::post("/create-group", json!({"tenant": "a*b", "group": "x"})),
            Some(&acme_admin.token),
            (400, "invalid_request"),
        ),
        (
            Call::post("/create-group", json!({"tenant": "globex", "group": "a*b"})),
            Some(&acme_admin.token),
            (403, "forbidden"),
        ),
        (
            Call::post("/create-group", json!({"tenant": "acme", "group": "a*b"})),
            Some(&acme_admin.token),
            (400, "invalid_request"),
        ),
        (
            Call::get("/groups", json!({"tenant": "globex", "extra": "1"})),
            Some(&acme_check.token),
            (400, "invalid_request"),
        ),
        (
            Call::get(
                "/user-permissions",
                json!({"tenant": "globex", "user": " padded"}),
            ),
            Some(&acme_check.token),
            (403, "forbidden"),
        ),
        (
            Call::raw("/create-api-key", truncated, "application/json"),
            Some(&all_admin.token),
            (403, "forbidden"),
        ),
        (
            Call::post("/revoke-api-key", json!({"id": "not an id"})),
            Some(&checker),
            (403, "forbidden"),
        ),
        (
            Call::post("/revoke-api-key", json!({"id": "not an id"})),
            None,
            (401, "unauthorized"),
        ),
    ];
    for (call, credential, (status, code)) in &ordered {
        total += 1;
        let reply = send(node, call, credential.map(String::as_str)).await;
        if let Some(problem) = error_mismatch(&reply, *status, code) {
            failures.push(format!("{} with {credential:?}: {problem}", call.label()));
        }
    }
    let after = common::stored_rows(&cluster.database_url).await;
    assert_no_failures(&failures, total);
    assert_eq!(before, after, "a refused request changed the store");

    // What is allowed and changes nothing: reads of the tenants a credential reaches, the
    // instance-wide views for credentials of every tenant, and /health and /ready for anyone.
    let mut failures = Vec::new();
    let mut total = 0;
    for route in routes
        .iter()
        .filter(|r| matches!(r.guard, Guard::Read | Guard::Instance))
    {
        for tenant in route.tenants() {
            for credential in credentials
                .iter()
                .filter(|c| allowed(c, route.guard, tenant))
            {
                total += 1;
                let reply = send(node, &route.call(tenant), Some(&credential.bearer)).await;
                if let Some(problem) = read_mismatch(route.path, tenant, &reply) {
                    failures.push(format!(
                        "{} with {}: {problem}",
                        route.call(tenant).label(),
                        credential.label
                    ));
                }
            }
        }
    }
    let anyone = strangers
        .iter()
        .map(|(label, bearer)| (label.clone(), bearer.clone()))
        .chain(
            credentials
                .iter()
                .map(|c| (c.label.to_string(), Some(c.bearer.clone()))),
        );
    for (label, bearer) in anyone {
        for path in ["/health", "/ready"] {
            total += 1;
            let reply = send(node, &Call::get(path, json!({})), bearer.as_deref()).await;
            if reply.status != StatusCode::OK {
                failures.push(format!(
                    "GET {path} with {label}: {} {}",
                    reply.status, reply.text
                ));
            }
        }
    }
    assert_no_failures(&failures, total);
    assert_eq!(
        before,
        common::stored_rows(&cluster.database_url).await,
        "a read changed the store"
    );

    // Admin keys write to the tenants they reach: acme's own key to acme, the key for every
    // tenant to globex.
    let mut failures = writes_succeed(node, &acme_admin.token, "acme").await;
    failures.extend(writes_succeed(node, &all_admin.token, "globex").await);
    assert!(
        failures.is_empty(),
        "writes refused:\n  {}",
        failures.join("\n  ")
    );
    for tenant in ["acme", "globex"] {
        assert_eq!(node.revision(tenant).await, 10, "{tenant}");
    }
}

#[tokio::test]
async fn without_a_token_every_route_but_the_key_endpoints_is_open_and_credential_says_so() {
    for (tokens, open) in [
        (
            &[][..],
            json!({"write": true, "read": true, "list_tenants": true, "view_instance": true, "manage_keys": false}),
        ),
        (
            &[("ADMIN_TOKEN", ADMIN)][..],
            json!({"write": false, "read": true, "list_tenants": false, "view_instance": true, "manage_keys": false}),
        ),
        (
            &[("CHECK_TOKEN", CHECKER)][..],
            json!({"write": true, "read": false, "list_tenants": false, "view_instance": false, "manage_keys": false}),
        ),
    ] {
        let cluster = Cluster::start_with(1, tokens).await;
        let node = &cluster[0];
        let reply = send(node, &Call::get("/credential", json!({})), None).await;
        assert_eq!(
            reply.body(),
            json!({"credential": null, "may": open}),
            "{tokens:?}"
        );
    }
}
