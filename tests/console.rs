//! The web console at /console, driven in a headless Chromium at a phone's width
//! ([`common::browser`]) against real server processes, and held to axe-core's
//! accessibility rules on every view.

mod common;

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header;
use serde_json::json;

use common::browser::{Browser, VIEWPORT};
use common::{Cluster, Instance};

const ADMIN: &str = "console-admin-token";

/// A tenant and a group whose names need encoding in a URL and in the console's locations.
const TENANT: &str = "acme corp/é";
const GROUP: &str = "editors & co";

/// Instances whose writes need `ADMIN`, and whose reads, `CHECK_TOKEN` or a key.
async fn cluster(count: usize) -> Cluster {
    Cluster::start_with(
        count,
        &[
            ("ADMIN_TOKEN", ADMIN),
            ("CHECK_TOKEN", "console-check-token"),
        ],
    )
    .await
}

/// Holds the view on screen to what every view must be: accessible by axe-core's rules, and
/// as wide as the screen at most, so that nothing needs scrolling sideways on a phone.
async fn check_view(browser: &Browser, view: &str) {
    browser.assert_accessible(view).await;
    let widths = browser
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            vec![],
        )
        .await;
    let (page, screen): (u64, u64) = serde_json::from_value(widths).unwrap();
    assert!(
        page <= screen,
        "{view} is {page} px wide on a screen of {screen}"
    );
}

/// WebDriver's codes for the Enter and Escape keys.
const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";

/// Opens the console of `instance`, and signs in with `token` from the keyboard: typed, then
/// Enter.
async fn sign_in(browser: &Browser, instance: &Instance, token: &str) {
    browser.goto(&instance.url("/console")).await;
    browser.wait_for_text("h1", "Sign in").await;
    watch_policy(browser).await;
    check_view(browser, "the sign-in page").await;
    browser.fill("Token or API key", token).await;
    press_enter(browser).await;
}

/// Presses Enter in the field that has the focus.
async fn press_enter(browser: &Browser) {
    press(browser, ENTER).await;
}

/// Presses `key` where the focus is.
async fn press(browser: &Browser, key: &str) {
    let focused = browser
        .client()
        .active_element()
        .await
        .expect("a focused element");
    focused.send_keys(key).await.expect("press a key");
}

/// Records, from now until the page is loaded again, whatever the Content-Security-Policy
/// blocks: the console builds all its views in this one page, so nothing it does escapes.
async fn watch_policy(browser: &Browser) {
    browser
        .execute(
            "window.blocked = []; document.addEventListener('securitypolicyviolation', \
             (event) => window.blocked.push(event.violatedDirective + ' ' + event.blockedURI))",
            vec![],
        )
        .await;
}

/// What the policy blocked since [`watch_policy`].
async fn blocked(browser: &Browser) -> serde_json::Value {
    browser.execute("return window.blocked", vec![]).await
}

/// The tag name of the element that has the focus: after a view is shown, its heading.
async fn focused(browser: &Browser) -> String {
    let tag = browser
        .execute("return document.activeElement.tagName", vec![])
        .await;
    tag.as_str().unwrap().to_owned()
}

/// POSTs `body` to `path` of `instance` with the curl command, as an operator would, with the
/// admin token; returns the answer.
async fn curl_write(instance: &Instance, path: &str, body: serde_json::Value) -> serde_json::Value {
    let output = tokio::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--fail-with-body",
            "--request",
            "POST",
        ])
        .args(["--header", "Content-Type: application/json"])
        .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
        .args(["--data", &body.to_string(), &instance.url(path)])
        .output()
        .await
        .expect("the curl command (scripts/test.sh installs it)");
    assert!(output.status.success(), "curl: {output:?}");
    serde_json::from_slice(&output.stdout).expect("a JSON answer")
}

/// How many forms and buttons the view shows.
async fn offered(browser: &Browser) -> u64 {
    let shown = browser
        .execute(
            "return [...document.querySelectorAll('main form, main button')]\
             .filter((element) => element.checkVisibility()).length",
            vec![],
        )
        .await;
    shown.as_u64().unwrap()
}

/// The check view's verdict for `user`, `resource`, `action`, once it reads `expected`.
async fn check(
    browser: &Browser,
    user: &str,
    resource: &str,
    action: &str,
    expected: &str,
) -> String {
    browser.fill_in("#check", "User", user).await;
    browser.fill_in("#check", "Resource", resource).await;
    browser.fill_in("#check", "Action", action).await;
    browser.click_button_in("#check", "Check").await;
    browser.wait_for_text(".verdict", expected).await
}

/// The whole round an administrator makes, every view checked for accessibility on the way:
/// a group made, given a permission and a member in the console; the check allowed, with
/// its reason; who-can; the permission revoked and the check denied; a write made on
/// another instance arriving in the live list of changes; and the instance's own view.
#[tokio::test]
async fn an_administrator_grants_checks_and_revokes_and_sees_changes_arrive() {
    let cluster = cluster(2).await;
    let browser = Browser::start().await;
    sign_in(&browser, &cluster[0], ADMIN).await;
    browser.wait_for_text("h1", "Tenants").await;
    browser.wait_for_text("#who", "admin · every tenant").await;
    browser
        .wait_for_text("main", "No tenant has been written yet.")
        .await;
    check_view(&browser, "the tenants").await;

    assert_eq!(
        focused(&browser).await,
        "H1",
        "a new view starts at its heading"
    );
    browser.fill("Tenant name", TENANT).await;
    browser.click_button("Open").await;
    browser
        .wait_for_text("h1", &format!("Tenant {TENANT}"))
        .await;
    // A reload keeps the tab signed in, on the same view.
    browser.client().refresh().await.expect("reload");
    browser
        .wait_for_text("h1", &format!("Tenant {TENANT}"))
        .await;
    browser.wait_for_text("#who", "admin · every tenant").await;
    watch_policy(&browser).await;
    browser.fill("New group", GROUP).await;
    browser.click_button("Create group").await;
    browser
        .wait_for_text(".outcome", &format!("Group {GROUP} created at revision 1."))
        .await;
    check_view(&browser, "a tenant").await;

    browser.click_link(GROUP).await;
    browser.wait_for_text("h1", &format!("Group {GROUP}")).await;
    browser.wait_for_text("main", "No permissions.").await;
    browser.fill("Resource", "docs/*").await;
    browser.fill("Action", "read").await;
    browser.click_button("Add permission").await;
    browser
        .wait_for_text(".outcome", "Permission added at revision 2.")
        .await;
    browser.fill("User", "alice").await;
    browser.click_button("Assign user").await;
    browser
        .wait_for_text(".outcome", "alice assigned at revision 3.")
        .await;
    browser.wait_for_text("table", "for good").await;
    check_view(&browser, "a group").await;
    // What the console did is in the store, as the API reads it on the other instance.
    let api = &cluster[1];
    // (At the console's revision: the bus may not have brought it there yet.)
    let checked = api
        .check_at(TENANT, "alice", "docs/readme", "read", 3)
        .await;
    assert_eq!(checked["allowed"], true, "{checked}");

    browser.click_link("Check access").await;
    browser
        .wait_for_text("h1", &format!("Check access in {TENANT}"))
        .await;
    let verdict = check(&browser, "alice", "docs/readme", "read", "Allowed").await;
    assert!(
        verdict.contains(&format!("Group {GROUP} grants read on docs/* directly")),
        "{verdict}"
    );
    if std::env::var_os("CONSOLE_SCREENSHOT").is_some() {
        // The README's picture, at a laptop's width.
        browser.resize(1000, 560).await;
        browser.execute("window.scrollTo(0, 0)", vec![]).await;
        browser.screenshot_if_asked().await;
        browser.resize(VIEWPORT.0, VIEWPORT.1).await;
    }
    browser.fill_in("#who-can", "Resource", "docs/plan").await;
    browser.fill_in("#who-can", "Action", "read").await;
    browser.click_button_in("#who-can", "List users").await;
    browser.wait_for_text("#who-can li", "alice").await;
    check_view(&browser, "the check").await;

    browser.click_link("Groups").await;
    browser.click_link(GROUP).await;
    browser
        .click_button("Remove permission read on docs/*")
        .await;
    browser.wait_for_text("main", "No permissions.").await;
    let checked = api
        .check_at(TENANT, "alice", "docs/readme", "read", 4)
        .await;
    assert_eq!(checked["allowed"], false, "{checked}");
    browser.click_link("Check access").await;
    let verdict = check(&browser, "alice", "docs/readme", "read", "Denied").await;
    assert!(
        verdict.contains("No group alice is a member of"),
        "{verdict}"
    );

    browser.click_link("Changes").await;
    browser.wait_for_text("[role=status]", "Live").await;
    browser
        .wait_for_text("table.changes", "took read on docs/* from")
        .await;
    // A write made with curl on the other instance.
    let answer = curl_write(
        api,
        "/assign-user",
        json!({"tenant": TENANT, "user": "bob", "group": GROUP}),
    )
    .await;
    assert_eq!(answer["revision"], 5, "{answer}");
    let row = browser
        .wait_for_text("table.changes tr", "assigned bob to")
        .await;
    assert!(row.starts_with('5'), "{row}");
    assert!(row.contains("token:"), "{row}");
    check_view(&browser, "the changes").await;

    browser.click_link("This instance").await;
    browser.wait_for_text("h1", "This instance").await;
    browser.wait_for_text("main", &cluster[0].server_id).await;
    let held = browser.wait_for_text("table", TENANT).await;
    assert!(held.contains("up to date"), "{held}");
    check_view(&browser, "the instance").await;

    // A key issued in the console works at once; revoked there, it is refused at once.
    browser.click_link("API keys").await;
    browser.wait_for_text("h1", "API keys").await;
    browser.fill("Name (optional)", "console reader").await;
    browser.fill("Tenant", TENANT).await;
    browser.fill("Role", "check").await;
    browser.click_button("Issue key").await;
    let issued = browser.wait_for_text(".outcome", "issued for").await;
    let id = issued.split(' ').nth(1).unwrap().to_owned();
    let key = browser
        .execute("return document.getElementById('issued-key').value", vec![])
        .await;
    let reader = cluster[0].with_token(key.as_str());
    let read = [
        ("tenant", TENANT),
        ("user", "bob"),
        ("resource", "docs/a"),
        ("action", "read"),
    ];
    assert_eq!(reader.get("/check-access", &read).await.0, StatusCode::OK);
    browser.wait_for_text("table", "console reader").await;
    check_view(&browser, "the API keys").await;
    // Asked first; kept, it still works.
    browser.click_button(&format!("Revoke key {id}")).await;
    browser.click_button(&format!("Keep key {id}")).await;
    assert_eq!(reader.get("/check-access", &read).await.0, StatusCode::OK);
    browser.click_button(&format!("Revoke key {id}")).await;
    browser.click_button(&format!("Revoke now: key {id}")).await;
    browser.wait_for_text("table", "revoked").await;
    assert_eq!(
        reader.get("/check-access", &read).await.0,
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(
        blocked(&browser).await,
        json!([]),
        "the policy blocked something"
    );

    browser.click_button("Sign out").await;
    browser.wait_for_text("h1", "Sign in").await;
    let kept = browser
        .execute("return sessionStorage.length", vec![])
        .await;
    assert_eq!(kept, 0, "signing out forgets the credential");
}

/// A key that may only read one tenant starts at that tenant, and is offered no form that
/// writes; a token that is not in force is refused at sign-in with the server's own words.
#[tokio::test]
async fn a_credential_is_offered_only_what_it_may_do() {
    let cluster = cluster(1).await;
    let node = &cluster[0];
    node.create_group(TENANT, GROUP).await;
    node.add_permission(TENANT, GROUP, "docs/*", "read").await;
    let (status, key) = node
        .post(
            "/create-api-key",
            json!({"tenant": TENANT, "role": "check", "name": "reader"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");

    let browser = Browser::start().await;
    // A link to a group, followed before signing in, leads there once signed in.
    let tenant = utf8_percent_encode(TENANT, NON_ALPHANUMERIC);
    let group = utf8_percent_encode(GROUP, NON_ALPHANUMERIC);
    let link = node.url(&format!("/console#/t/{tenant}/g/{group}"));
    browser.goto(&link).await;
    browser.wait_for_text("h1", "Sign in").await;
    watch_policy(&browser).await;
    browser.fill("Token or API key", "not-a-token").await;
    press_enter(&browser).await;
    browser
        .wait_for_text("[role=alert]", "(unauthorized)")
        .await;
    browser
        .fill("Token or API key", key["key"].as_str().unwrap())
        .await;
    browser.click_button("Sign in").await;
    browser.wait_for_text("h1", &format!("Group {GROUP}")).await;
    browser.wait_for_text("#who", "check").await;
    browser.wait_for_text("table", "docs/*").await;
    assert_eq!(offered(&browser).await, 0, "a reader is offered a write");
    browser.click_link("Groups").await;
    browser
        .wait_for_text("h1", &format!("Tenant {TENANT}"))
        .await;
    browser.wait_for_text("table", GROUP).await;
    // Looking up a user is a read: the one form, with its button, a reader has here.
    assert_eq!(offered(&browser).await, 2, "a reader is offered a write");
    let keys = browser
        .execute(
            "return [...document.querySelectorAll('#nav a')].map((a) => a.textContent)",
            vec![],
        )
        .await;
    assert_eq!(
        keys,
        json!(["Tenants", "This instance"]),
        "a reader is offered the keys"
    );
    browser.click_link("This instance").await;
    browser
        .wait_for_text(
            "main",
            "What this instance holds in memory takes a credential for every tenant.",
        )
        .await;

    // The key revoked meanwhile: the next request is refused, and the console forgets it.
    let (status, revoked) = node.post("/revoke-api-key", json!({"id": key["id"]})).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    browser.click_link("Tenants").await;
    browser
        .wait_for_text("[role=alert]", "no longer in force")
        .await;
    browser.wait_for_text("h1", "Sign in").await;
    let kept = browser
        .execute("return sessionStorage.length", vec![])
        .await;
    assert_eq!(kept, 0, "a refused credential is kept");

    // The policy is in force, and the record of what it blocks records it.
    browser
        .execute("document.body.setAttribute('style', 'color: red')", vec![])
        .await;
    browser.wait_for_text("h1", "Sign in").await;
    let refused = blocked(&browser).await;
    assert!(
        refused.as_array().is_some_and(|all| all
            .iter()
            .any(|one| one.as_str().unwrap().starts_with("style-src"))),
        "an inline style went unblocked: {refused}"
    );

    // The accessibility check can fail on the console's own pages, under their policy.
    browser
        .execute("document.querySelector('label').remove()", vec![])
        .await;
    let violations = browser.accessibility_violations().await;
    assert!(
        violations.iter().any(|v| v.id == "label" && v.is_serious()),
        "{violations:#?}"
    );
}

/// On a server whose routes are open, the console is used without a token: a group nested
/// in another in the console gives its members the other's permissions, which the check
/// explains through the nesting; a membership given an end says when; a group deleted
/// after its confirmation is gone; and a location the console does not have says so.
#[tokio::test]
async fn nestings_ends_and_deletions_on_an_open_server() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    for group in ["db", "engineering"] {
        node.create_group(TENANT, group).await;
    }
    node.add_permission(TENANT, "engineering", "wiki/*", "read")
        .await;
    node.assign_user(TENANT, "carol", "db").await;

    let browser = Browser::start().await;
    browser.goto(&node.url("/console")).await;
    browser.wait_for_text("h1", "Sign in").await;
    browser.click_button("Continue without a token").await;
    browser.wait_for_text("#who", "no credential").await;
    // Every tenant is listed, found by the start of its name.
    browser.fill("Name starts with", "acme").await;
    browser.click_button("Find").await;
    let found = browser.wait_for_text("table", TENANT).await;
    assert!(
        found.contains("2 groups, 1 permission, 1 membership"),
        "{found}"
    );
    check_view(&browser, "the tenants found").await;
    browser.click_link(TENANT).await;
    browser.click_link("db").await;
    browser.wait_for_text("h1", "Group db").await;
    browser
        .wait_for_text("main", "db is not nested in any group.")
        .await;

    browser.fill("Parent group", "engineering").await;
    browser.click_button("Nest in group").await;
    browser
        .wait_for_text(".outcome", "db nested in engineering at revision 5.")
        .await;
    browser.wait_for_text("table", "engineering").await;
    // A group cannot be nested in itself: the server's refusal, shown where it was asked.
    browser.fill("Parent group", "db").await;
    browser.click_button("Nest in group").await;
    browser.wait_for_text("[role=alert]", "(cycle)").await;

    // An end, as a person picks it: in the browser's own time zone.
    browser
        .execute(
            "const field = document.getElementById(document.evaluate(\"//label[.='Membership ends (optional)']\", \
             document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue.htmlFor); \
             field.value = '2031-06-01T12:30';",
            vec![],
        )
        .await;
    browser.fill("User", "dave").await;
    browser.click_button("Assign user").await;
    browser
        .wait_for_text(".outcome", "dave assigned at revision 6.")
        .await;
    let members = node
        .get("/group-members", &[("tenant", TENANT), ("group", "db")])
        .await
        .1;
    let ending = &members["expiring"][0];
    assert_eq!(
        (&ending["user"], &ending["expired"]),
        (&json!("dave"), &json!(false))
    );
    let same = browser
        .execute(
            "return new Date(arguments[0]).getTime() === new Date('2031-06-01T12:30').getTime()",
            vec![ending["expires_at"].clone()],
        )
        .await;
    assert_eq!(same, json!(true), "{members}");
    browser.wait_for_text("table", "until").await;
    check_view(&browser, "a nested group").await;

    browser.click_link("Check access").await;
    let verdict = check(&browser, "carol", "wiki/home", "read", "Allowed").await;
    assert!(
        verdict.contains("Group engineering grants read on wiki/* through db → engineering"),
        "{verdict}"
    );

    browser
        .click_link(&format!("Everything carol may do in {TENANT}"))
        .await;
    browser.wait_for_text("h1", "User carol").await;
    browser
        .wait_for_text("table", "engineering through nesting")
        .await;
    browser.wait_for_text("table", "db member").await;
    let permissions = browser.wait_for_text("table", "wiki/*").await;
    assert!(
        permissions.contains("wiki/* read engineering"),
        "{permissions}"
    );
    check_view(&browser, "a user").await;

    browser.click_link("Groups").await;
    browser.click_link("db").await;
    // Asked, then kept: by the button, and by Escape, the focus back on the first button.
    browser.click_button("Delete group…").await;
    browser.click_button("Keep it").await;
    browser.click_button("Delete group…").await;
    assert_eq!(focused(&browser).await, "BUTTON");
    press(&browser, ESCAPE).await;
    let back = browser
        .execute("return document.activeElement.textContent", vec![])
        .await;
    assert_eq!(back, json!("Delete group…"));
    browser.click_button("Delete group…").await;
    browser.click_button("Delete db").await;
    browser
        .wait_for_text("h1", &format!("Tenant {TENANT}"))
        .await;
    browser.wait_for_text("table", "engineering").await;
    let groups = browser.text("table").await;
    assert!(!groups.contains("db"), "{groups}");

    browser.goto(&node.url("/console#/nowhere/at/all")).await;
    browser.wait_for_text("h1", "Not found").await;
    check_view(&browser, "a location the console does not have").await;
}

/// Where reads need a token, going on without one is stopped at the first read, saying so.
#[tokio::test]
async fn going_on_without_a_token_where_reads_need_one_says_so() {
    let cluster = Cluster::start_with(1, &[("CHECK_TOKEN", "console-check-token")]).await;
    let browser = Browser::start().await;
    browser.goto(&cluster[0].url("/console")).await;
    browser.click_button("Continue without a token").await;
    browser.wait_for_text("h1", "Tenants").await;
    browser.fill("Tenant name", TENANT).await;
    browser.click_button("Open").await;
    browser
        .wait_for_text("[role=alert]", "This server needs a token for that")
        .await;
    browser.wait_for_text("h1", "Sign in").await;
    assert_eq!(focused(&browser).await, "H1");
}

/// The page and every file it loads come from the binary, with the policy that keeps any
/// other script out, and a tag that spares a browser downloading them again, also when a
/// proxy has made it weak.
#[tokio::test]
async fn the_console_is_served_whole_and_under_a_strict_policy() {
    let cluster = cluster(1).await;
    let node = &cluster[0];
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(node.url("/console")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let html = page.text().await.unwrap();
    for script in html.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap();
        assert!(tag.contains(" src="), "an inline script: <script{tag}>");
    }
    assert!(!html.contains("style="), "an inline style: {html}");

    // The page's files, and the modules they import, each once.
    let mut files: Vec<String> = html
        .split("\"console/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect();
    assert_eq!(files.len(), 3, "{html}");
    let mut fetched = std::collections::BTreeSet::new();
    while let Some(file) = files.pop() {
        if !fetched.insert(file.clone()) {
            continue;
        }
        let url = node.url(&format!("/console/{file}"));
        let answer = client.get(&url).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{file}");
        assert!(
            answer
                .headers()
                .contains_key(header::CONTENT_SECURITY_POLICY)
        );
        let tag = answer.headers()[header::ETAG].to_str().unwrap().to_owned();
        for asked in [tag.clone(), format!("W/{tag}"), format!("\"other\", {tag}")] {
            let again = client
                .get(&url)
                .header(header::IF_NONE_MATCH, &asked)
                .send()
                .await
                .unwrap();
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{file} {asked}");
        }
        let text = answer.text().await.unwrap();
        for line in text.lines().filter(|line| line.starts_with("import ")) {
            let module = line
                .split("'./")
                .nth(1)
                .unwrap()
                .split('\'')
                .next()
                .unwrap();
            files.push(module.to_owned());
        }
    }
    assert_eq!(fetched.len(), 12, "{fetched:?}");

    let missing = client
        .get(node.url("/console/secrets.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let folder = client.get(node.url("/console/")).send().await.unwrap();
    assert_eq!(folder.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(folder.headers()[header::LOCATION], "../console");
}

/// `html` as a page to open: a data: URL.
fn page(html: &str) -> String {
    format!(
        "data:text/html;charset=utf-8,{}",
        utf8_percent_encode(html, NON_ALPHANUMERIC)
    )
}

/// A PNG's width and height, from its header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let number = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (number(16), number(20))
}

/// A form that writes a greeting, accessible as it stands.
const GREETER: &str = r#"<!doctype html>
<html lang="en"><title>Greeter</title>
<main>
  <h1>Greeter</h1>
  <form onsubmit="event.preventDefault();
      document.querySelector('output').textContent = `Hello, ${this.elements.name.value}!`">
    <label for="name">Your name</label> <input id="name" name="name" value="someone">
    <button>Greet</button>
  </form>
  <output aria-live="polite"></output>
</main>"#;

/// The same field without its label: axe's `label` rule, of critical impact.
const UNLABELLED: &str = r#"<!doctype html>
<html lang="en"><title>Unlabelled</title>
<main><h1>Unlabelled</h1><input id="name"></main>"#;

/// The harness itself: it fills a field found by its label, clicks a button found by its
/// text and reads what the page wrote, in a viewport of the width it promises; and its
/// accessibility check passes a page that breaks no rule and fails one that does.
#[tokio::test]
async fn the_browser_harness_drives_a_page_and_runs_axe() {
    let browser = Browser::start().await;
    browser.goto(&page(GREETER)).await;
    browser.fill("Your name", "Ada").await;
    browser.click_button("Greet").await;
    assert_eq!(browser.wait_for_text("output", "Ada").await, "Hello, Ada!");
    assert_eq!(browser.viewport().await, VIEWPORT);
    let folder = common::temp_dir("console");
    browser.screenshot_to(folder.join("greeter.png")).await;
    assert_eq!(
        png_size(&std::fs::read(folder.join("greeter.png")).unwrap()),
        VIEWPORT
    );
    std::fs::remove_dir_all(folder).unwrap();
    browser.assert_accessible("the greeter").await;

    browser.goto(&page(UNLABELLED)).await;
    let violations = browser.accessibility_violations().await;
    assert!(
        violations
            .iter()
            .any(|v| v.id == "label" && v.is_serious() && v.nodes == ["#name"]),
        "axe missed the unlabelled field: {violations:#?}"
    );
    let failed = AssertUnwindSafe(browser.assert_accessible("the unlabelled page"))
        .catch_unwind()
        .await
        .expect_err("an unlabelled field passes the accessibility check");
    let message = failed
        .downcast_ref::<String>()
        .expect("a formatted message");
    assert!(
        message.contains("the unlabelled page") && message.contains("#name"),
        "{message}"
    );
}
