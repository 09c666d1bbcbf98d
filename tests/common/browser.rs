//! A headless Chromium for the tests of the web console, driven over WebDriver.
//!
//! [`Browser::start`] starts chromedriver on a free loopback port, in a process group of its
//! own, and a Chromium session through it with a fresh profile and a 375 px wide viewport, the
//! narrowest the console must work at. The helpers find things as a user does: a field by the
//! text of its label, a button or a link by its text. Each waits up to [`WAIT`] for the page
//! to get there, so that nothing sleeps, and fails the test naming what it waited for and
//! showing the page's visible text. [`Browser::assert_accessible`] runs axe-core in the page.
//!
//! A test that fails with a browser open leaves a screenshot of the page in
//! `target/console-failure-<test>.png`, the path printed. Needs `chromedriver` and `chromium`
//! on PATH: scripts/test.sh installs them.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::{CmdError, NewSessionError};
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde_json::{Value, json};

// axe-core 4.14.1: axe.min.js of the npm package (`npm pack axe-core@4.14.1`), licensed under
// MPL-2.0 (tests/console/AXE-LICENSE).
const AXE_SOURCE: &str = include_str!("../console/axe.min.js");

/// WebDriver waits for a promise a script returns.
const AXE_RUN: &str = "return axe.run(document, {resultTypes: ['violations']}).then(r => \
    r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, \
    nodes: v.nodes.map(n => [n.target].flat(Infinity).join(' '))})))";

/// How long a helper waits for the page to get where it wants: a few seconds at most here,
/// but a test machine of two cores runs several browsers and servers at once.
pub const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);
/// Chromium's first start on a cold machine takes a few seconds.
const START: Duration = Duration::from_secs(30);
/// The viewport [`Browser::start`] gives: a small phone's.
pub const VIEWPORT: (u32, u32) = (375, 800);
/// The most of the page's text a failure shows.
const PAGE_TEXT_SHOWN: usize = 2000;

/// A Chromium session for one test. Dropping it ends Chromium and chromedriver; dropping it
/// while the test panics first saves a screenshot of the page.
pub struct Browser {
    client: Client,
    session_id: Option<String>,
    /// The test's name, for the failure screenshot's.
    test: String,
    // Dropped after `client`, whose last requests it would otherwise fail.
    driver: Driver,
}

/// One rule of axe-core that the page breaks.
#[derive(Debug, Clone, Deserialize)]
pub struct Violation {
    /// The rule, `label` say.
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: Option<String>,
    /// What the rule asks for.
    pub help: String,
    /// A CSS selector of each element that breaks it.
    pub nodes: Vec<String>,
}

impl Violation {
    /// Whether it fails [`Browser::assert_accessible`]: `serious` or `critical`.
    pub fn is_serious(&self) -> bool {
        matches!(self.impact.as_deref(), Some("serious" | "critical"))
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let impact = self.impact.as_deref().unwrap_or("no impact");
        write!(
            f,
            "{} ({impact}): {}; at {}",
            self.id,
            self.help,
            self.nodes.join(", ")
        )
    }
}

/// chromedriver, and the Chromium it starts, in a process group of their own: dropped, the
/// whole group is killed. Killing chromedriver alone would leave Chromium running.
struct Driver {
    child: Child,
    port: u16,
    /// Chromium's profile and chromedriver's log, removed with them.
    dir: PathBuf,
}

impl Driver {
    fn start() -> Self {
        // Chromium makes a Unix socket in its temp folder, and a socket's path holds at most
        // 107 bytes: under a deep TMPDIR (the test command's is) it cannot start at all. A
        // short folder of its own under /tmp keeps well within that.
        let dir = Path::new("/tmp").join(format!(
            "chromium-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        std::fs::create_dir_all(&dir).expect("create Chromium's folder");
        let log = std::fs::File::create(dir.join("chromedriver.log")).expect("create a log file");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            // Killed, Chromium leaves its temp files behind: let them go with the folder.
            .env("TMPDIR", &dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("share the log file"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start chromedriver ({error}): install chromium and chromium-driver, \
                     as scripts/test.sh does"
                )
            });
        Self { child, port, dir }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("chromedriver.log")).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: killpg takes any group and signal; chromedriver is not reaped yet, so its
        // pid is still the id of the group it leads.
        unsafe { libc::killpg(self.child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Why a helper's attempt has not succeeded yet; the last one is shown if it never does.
struct NotYet(String);

impl From<CmdError> for NotYet {
    fn from(error: CmdError) -> Self {
        Self(error.to_string())
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile and a [`VIEWPORT`]
    /// sized window.
    pub async fn start() -> Self {
        let test = test_name();
        let driver = Driver::start();
        let profile = driver.dir.join("profile");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "args": [
                    "--headless=new",
                    // Root in a container has no user namespace to sandbox with.
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--no-first-run",
                    // The tests need no network beyond loopback, and may have none.
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("capabilities are an object")
        };
        let mut session = ClientBuilder::new(HttpConnector::new());
        session.capabilities(capabilities);
        let url = driver.url();
        let deadline = tokio::time::Instant::now() + START;
        // Asking for a session until chromedriver listens is the wait for it to be ready.
        let client = loop {
            let error = match tokio::time::timeout_at(deadline, session.connect(&url)).await {
                Ok(Ok(client)) => break client,
                Ok(Err(
                    NewSessionError::Failed(_)
                    | NewSessionError::FailedC(_)
                    | NewSessionError::Lost(_),
                )) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(POLL).await;
                    continue;
                }
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("none within {START:?}"),
            };
            panic!(
                "no Chromium session from chromedriver: {error}\nchromedriver's log:\n{}",
                driver.log()
            );
        };
        let session_id = client.session_id().await.ok().flatten();
        let browser = Self {
            client,
            session_id,
            test,
            driver,
        };
        let (width, height) = VIEWPORT;
        browser.resize(width, height).await;
        browser
            .client
            .update_timeouts(TimeoutConfiguration::new(
                // axe takes a few seconds on a large page.
                Some(Duration::from_secs(30)),
                Some(Duration::from_secs(30)),
                Some(Duration::ZERO),
            ))
            .await
            .expect("set the timeouts");
        browser
    }

    /// The WebDriver client, for what the helpers do not do.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sizes the viewport, in CSS pixels.
    pub async fn resize(&self, width: u32, height: u32) {
        // WebDriver sizes the window, frame included, and headless Chromium still has a frame
        // (143 px tall in Chromium 156): see what the viewport got, and make up the difference.
        let mut window = (width, height);
        for _ in 0..2 {
            self.client
                .set_window_size(window.0, window.1)
                .await
                .unwrap_or_else(|error| panic!("resize the window to {window:?}: {error}"));
            let viewport = self.viewport().await;
            if viewport == (width, height) {
                return;
            }
            window = (
                (window.0 + width).saturating_sub(viewport.0),
                (window.1 + height).saturating_sub(viewport.1),
            );
        }
        panic!(
            "asked for a {width}x{height} viewport, got {:?}",
            self.viewport().await
        );
    }

    /// The viewport's width and height, in CSS pixels.
    pub async fn viewport(&self) -> (u32, u32) {
        let size = self
            .execute("return [window.innerWidth, window.innerHeight]", vec![])
            .await;
        serde_json::from_value(size).expect("two numbers")
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        if let Err(error) = self.client.goto(url).await {
            panic!("cannot open {url}: {error}");
        }
    }

    /// Runs `script` as the body of a function given `args` as `arguments`; returns what it
    /// returns, or what the promise it returns resolves to.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|error| panic!("script failed: {error}\n{}", shorten(script, 300)))
    }

    /// Types `value` into the one form control labelled exactly `label` (its `<label>`, by
    /// `for` or around it), replacing what it held; for a `<select>`, picks the option that
    /// reads `value`.
    pub async fn fill(&self, label: &str, value: &str) {
        self.fill_control(None, label, value).await
    }

    /// [`Browser::fill`] in the first element `scope` (a CSS selector) selects: for a page
    /// with two fields of the same label.
    pub async fn fill_in(&self, scope: &str, label: &str, value: &str) {
        self.fill_control(Some(scope), label, value).await
    }

    /// Clicks the one visible `<button>` whose text, or aria-label, is exactly `text`, once it
    /// is enabled.
    pub async fn click_button(&self, text: &str) {
        self.click(None, "button", text).await
    }

    /// [`Browser::click_button`] in the first element `scope` (a CSS selector) selects.
    pub async fn click_button_in(&self, scope: &str, text: &str) {
        self.click(Some(scope), "button", text).await
    }

    /// Clicks the one visible link whose text, or aria-label, is exactly `text`.
    pub async fn click_link(&self, text: &str) {
        self.click(None, "a", text).await
    }

    /// The text of the first element `selector` selects whose text contains `expected`, once
    /// there is one.
    pub async fn wait_for_text(&self, selector: &str, expected: &str) -> String {
        let what = format!("`{selector}` to read {expected:?}");
        self.wait_until(&what, async || {
            let elements = self.client.find_all(Locator::Css(selector)).await?;
            let mut texts = Vec::new();
            for element in elements {
                let text = element.text().await?;
                if text.contains(expected) {
                    return Ok(text);
                }
                texts.push(text);
            }
            Err(NotYet(format!("it reads {texts:?}")))
        })
        .await
    }

    /// The text of the first element `selector` selects, once there is one.
    pub async fn text(&self, selector: &str) -> String {
        let what = format!("an element `{selector}`");
        self.wait_until(&what, async || {
            Ok(self
                .client
                .find(Locator::Css(selector))
                .await?
                .text()
                .await?)
        })
        .await
    }

    /// Saves a PNG of the viewport at `path`.
    pub async fn screenshot_to(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        let png = self.client.screenshot().await.expect("take a screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the screenshot's folder");
        }
        std::fs::write(path, png)
            .unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
    }

    /// Saves a screenshot at the path CONSOLE_SCREENSHOT names, if it is set: for a picture
    /// of the page as a passing test leaves it. A relative path is from the package's folder,
    /// where tests run.
    pub async fn screenshot_if_asked(&self) {
        if let Some(path) = std::env::var_os("CONSOLE_SCREENSHOT") {
            self.screenshot_to(&path).await;
            eprintln!("screenshot saved to {}", Path::new(&path).display());
        }
    }

    /// Every axe-core rule the page as it is now breaks.
    pub async fn accessibility_violations(&self) -> Vec<Violation> {
        // A page loaded since the last run has lost it.
        self.execute(AXE_SOURCE, vec![]).await;
        let found = self.execute(AXE_RUN, vec![]).await;
        serde_json::from_value(found).expect("axe's violations")
    }

    /// Fails the test, naming `page`, if the page breaks any `serious` or `critical` axe-core
    /// rule, listing each with its elements; the lesser ones are printed.
    pub async fn assert_accessible(&self, page: &str) {
        let (serious, lesser): (Vec<_>, Vec<_>) = self
            .accessibility_violations()
            .await
            .into_iter()
            .partition(Violation::is_serious);
        for violation in &lesser {
            eprintln!("{page}: {violation}");
        }
        let list: Vec<String> = serious.iter().map(|v| format!("  {v}")).collect();
        assert!(
            serious.is_empty(),
            "{page} breaks {} serious accessibility rule(s):\n{}",
            serious.len(),
            list.join("\n")
        );
    }

    async fn fill_control(&self, scope: Option<&str>, label: &str, value: &str) {
        let what = format!("a field labelled {label:?}{}", in_scope(scope));
        self.wait_until(&what, async || {
            let control = self.labelled_control(scope, label).await?;
            if control.tag_name().await? == "select" {
                control.select_by_label(value).await?;
                return Ok(());
            }
            control.clear().await?;
            control.send_keys(value).await?;
            // A page that redraws the field while it is typed into may drop the keys.
            let held = control.prop("value").await?.unwrap_or_default();
            if held != value && control.attr("type").await?.as_deref() != Some("file") {
                return Err(NotYet(format!("the field holds {held:?}")));
            }
            Ok(())
        })
        .await
    }

    async fn labelled_control(&self, scope: Option<&str>, label: &str) -> Result<Element, NotYet> {
        let path = format!("label[normalize-space()={}]", xpath_literal(label));
        let labels = self.find_all(scope, &path).await?;
        let [label_element] = labels.as_slice() else {
            return Err(NotYet(format!("found {} such labels", labels.len())));
        };
        match label_element.attr("for").await? {
            Some(id) => {
                let by_id = format!("//*[@id={}]", xpath_literal(&id));
                self.client
                    .find(Locator::XPath(&by_id))
                    .await
                    .map_err(|_| NotYet(format!("the label is for {id:?}, which is not there")))
            }
            None => label_element
                .find(Locator::XPath("(.//input | .//select | .//textarea)"))
                .await
                .map_err(|_| NotYet("the label has no `for` and no control in it".into())),
        }
    }

    async fn click(&self, scope: Option<&str>, tag: &str, text: &str) {
        let literal = xpath_literal(text);
        let path = format!("{tag}[normalize-space()={literal} or @aria-label={literal}]");
        let what = format!("a <{tag}> reading {text:?}{}", in_scope(scope));
        self.wait_until(&what, async || {
            let found = self.find_all(scope, &path).await?;
            let mut visible = Vec::new();
            for element in &found {
                if element.is_displayed().await? {
                    visible.push(element);
                }
            }
            let [element] = visible.as_slice() else {
                let (visible, all) = (visible.len(), found.len());
                return Err(NotYet(format!("found {visible} visible of {all}")));
            };
            if !element.is_enabled().await? {
                return Err(NotYet("it is disabled".into()));
            }
            Ok(element.click().await?)
        })
        .await
    }

    /// The elements XPath `path` selects under the first element CSS `scope` selects, or in
    /// the whole page.
    async fn find_all(&self, scope: Option<&str>, path: &str) -> Result<Vec<Element>, NotYet> {
        match scope {
            Some(scope) => {
                let root = self
                    .client
                    .find(Locator::Css(scope))
                    .await
                    .map_err(|_| NotYet(format!("nothing matches `{scope}`")))?;
                Ok(root.find_all(Locator::XPath(&format!(".//{path}"))).await?)
            }
            None => Ok(self
                .client
                .find_all(Locator::XPath(&format!("//{path}")))
                .await?),
        }
    }

    /// Tries `attempt` every [`POLL`] until it succeeds or [`WAIT`] passes; then fails the test
    /// with `what` it waited for, why the last attempt failed, and the page's text.
    async fn wait_until<T>(
        &self,
        what: &str,
        mut attempt: impl AsyncFnMut() -> Result<T, NotYet>,
    ) -> T {
        let started = Instant::now();
        loop {
            let why = match attempt().await {
                Ok(done) => return done,
                Err(NotYet(why)) => why,
            };
            if started.elapsed() > WAIT {
                panic!(
                    "waited {WAIT:?} for {what}: {why}\n{}",
                    self.describe_page().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The page's address and the start of its visible text, for a failure's message.
    async fn describe_page(&self) -> String {
        let url = match self.client.current_url().await {
            Ok(url) => shorten(url.as_str(), 200),
            Err(error) => format!("(unknown: {error})"),
        };
        let script = "return document.body ? document.body.innerText : ''";
        let text = match self.client.execute(script, vec![]).await {
            Ok(Value::String(text)) => shorten(&text, PAGE_TEXT_SHOWN),
            Ok(other) => other.to_string(),
            Err(error) => format!("(unreadable: {error})"),
        };
        format!("page {url} reads:\n{text}")
    }

    /// Saves a screenshot of the page to `target/console-failure-<test>.png` and prints where.
    fn save_failure_screenshot(&self) {
        let Some(session_id) = self.session_id.clone() else {
            return;
        };
        let webdriver = self.driver.url();
        let path = target_dir().join(format!("console-failure-{}.png", self.test));
        // The test's runtime may have no thread but the one this runs on, which waits here:
        // the screenshot goes through a second handle on the session, on a runtime of its own.
        let taken = std::thread::spawn(move || -> Result<Vec<u8>, String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async {
                let screenshot = async {
                    let client = Client::with_existing_session(
                        &webdriver,
                        &session_id,
                        HttpConnector::new(),
                    )
                    .await
                    .map_err(|error| error.to_string())?;
                    let png = client.screenshot().await.map_err(|error| error.to_string());
                    // Otherwise its drop ends the session, which the test's handle still uses.
                    let _ = client.persist().await;
                    png
                };
                tokio::time::timeout(WAIT, screenshot)
                    .await
                    .map_err(|_| format!("no screenshot within {WAIT:?}"))?
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the screenshot's thread panicked".into()));
        let saved = taken.and_then(|png| {
            std::fs::create_dir_all(path.parent().expect("a folder"))
                .and_then(|()| std::fs::write(&path, png))
                .map_err(|error| error.to_string())
        });
        match saved {
            Ok(()) => eprintln!("screenshot of the page at the failure: {}", path.display()),
            Err(error) => eprintln!("no screenshot of the page at the failure: {error}"),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.save_failure_screenshot();
        }
    }
}

/// The running test's name, from its thread's, as a file name.
fn test_name() -> String {
    let thread = std::thread::current();
    let name = thread
        .name()
        .filter(|name| *name != "main")
        .unwrap_or("test");
    name.replace("::", "-")
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .collect()
}

/// Cargo's target folder: CARGO_TARGET_DIR, else the package's `target`.
fn target_dir() -> PathBuf {
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Joining an absolute path gives that path.
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| package.join("target"), |dir| package.join(dir))
}

/// `text` as an XPath string literal: XPath 1.0 has no escapes, only two kinds of quotes.
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        format!("concat('{}')", text.replace('\'', "', \"'\", '"))
    }
}

fn in_scope(scope: Option<&str>) -> String {
    scope.map_or_else(String::new, |scope| format!(" in `{scope}`"))
}

/// The first `max` characters of `text`, and how many more there were.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!(
            "{}… ({} more characters)",
            &text[..end],
            text[end..].chars().count()
        ),
        None => text.to_owned(),
    }
}
