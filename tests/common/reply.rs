//! A server's answer as the HTTP batteries read it, and what makes it the documented error.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use serde_json::Value;

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Self {
        Self {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.expect("read the response body"),
        }
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.text).ok()
    }

    /// The parsed body of a reply that must be JSON.
    pub fn body(&self) -> Value {
        self.json()
            .unwrap_or_else(|| panic!("not JSON: {} {:?}", self.status, self.text))
    }
}

/// What is wrong with `reply` as the documented error `status`/`code`, if anything: the status,
/// a JSON content type, a body of exactly `{"error":{"code","message"}}` with that code and a
/// non-empty message, and for 401 the `WWW-Authenticate: Bearer` header.
pub fn error_mismatch(reply: &Reply, status: u16, code: &str) -> Option<String> {
    let mut problems = Vec::new();
    if reply.status.as_u16() != status {
        problems.push(format!(
            "status {} instead of {status}",
            reply.status.as_u16()
        ));
    }
    let content_type = reply
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        problems.push(format!("content type {content_type:?}"));
    }
    match reply.json() {
        None => problems.push(format!("body is not JSON: {:?}", reply.text)),
        Some(body) => {
            let shape = body.as_object().is_some_and(|o| o.len() == 1)
                && body["error"].as_object().is_some_and(|e| {
                    e.len() == 2 && e["code"].is_string() && e["message"].is_string()
                });
            if !shape {
                problems.push(format!(
                    "body is not {{\"error\":{{\"code\":..,\"message\":..}}}}: {body}"
                ));
            } else {
                if body["error"]["code"] != code {
                    problems.push(format!(
                        "code {} instead of {code:?}",
                        body["error"]["code"]
                    ));
                }
                if body["error"]["message"]
                    .as_str()
                    .is_none_or(|m| m.trim().is_empty())
                {
                    problems.push("empty message".to_string());
                }
            }
        }
    }
    if status == 401 {
        let challenge = reply.headers.get(WWW_AUTHENTICATE);
        if challenge.is_none_or(|v| v != "Bearer") {
            problems.push(format!("WWW-Authenticate is {challenge:?}, not \"Bearer\""));
        }
    }
    if problems.is_empty() {
        None
    } else {
        Some(format!(
            "{}; got {} {}",
            problems.join("; "),
            reply.status.as_u16(),
            reply.text
        ))
    }
}

/// Fails listing every request that did not get its documented answer, out of `total`.
/// Asserts that `reply` is the documented error `status`/`code`; `what` names the request.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str, what: &str) {
    if let Some(problem) = error_mismatch(reply, status, code) {
        panic!("{what}: {problem}");
    }
}

pub fn assert_no_failures(failures: &[String], total: usize) {
    assert!(
        failures.is_empty(),
        "{} of {total} requests did not get their documented answer:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}
