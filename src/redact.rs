//! Keeping passwords out of anything shown: log lines, errors, Debug output.

/// What stands in for a secret in anything shown.
const REDACTED: &str = "***";

/// Query parameters whose value is a secret: PostgreSQL takes `password` (and libpq
/// `sslpassword`, the client key's passphrase), and Redis `pass` for a socket URL.
const SECRET_PARAMETERS: [&str; 3] = ["password", "sslpassword", "pass"];

/// `url` as it may be shown in a log line or an error: every password in it (before the `@`,
/// or as a query parameter) replaced by `***`. The rest stays, since the scheme, user, host,
/// port, database and `sslmode` are what tell a reader which server is meant and how.
pub fn redact_url(url: &str) -> String {
    let Some((mut parsed, hosts)) = parse(url) else {
        // Where its password would be cannot be told, so nothing of it is shown.
        return "<not a valid URL>".into();
    };
    if parsed.password().is_some() {
        // Fails only for URLs without an authority, which then carry no password there.
        let _ = parsed.set_password(Some(REDACTED));
    }
    if parsed
        .query_pairs()
        .any(|(key, _)| is_secret_parameter(&key))
    {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let value = if is_secret_parameter(&key) {
                    REDACTED.into()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    match hosts {
        Some(hosts) => with_hosts(&parsed, hosts),
        None => parsed.into(),
    }
}

/// The host that stands in for a list of hosts while the url crate reads the rest.
const PLACEHOLDER_HOST: &str = "hosts";

/// `url` as the url crate reads it. A list of hosts (`h1:26379,h2:26379`, in a Sentinel or
/// Cluster URL), which it refuses, is read as one placeholder host, and returned beside.
fn parse(url: &str) -> Option<(url::Url, Option<&str>)> {
    if let Ok(parsed) = url::Url::parse(url) {
        return Some((parsed, None));
    }
    let (scheme, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    if !hosts.contains(',') {
        return None;
    }
    let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let tail = &rest[authority.len()..];
    let stand_in = format!("{scheme}://{userinfo}{PLACEHOLDER_HOST}{tail}");
    Some((url::Url::parse(&stand_in).ok()?, Some(hosts)))
}

/// `parsed`, read with a placeholder host, written with `hosts` in its place.
fn with_hosts(parsed: &url::Url, hosts: &str) -> String {
    let userinfo = match (parsed.username(), parsed.password()) {
        ("", None) => String::new(),
        (user, None) => format!("{user}@"),
        (user, Some(password)) => format!("{user}:{password}@"),
    };
    format!(
        "{}://{userinfo}{hosts}{}",
        parsed.scheme(),
        &parsed[url::Position::BeforePath..]
    )
}

/// `text` with the passwords that `url` carries replaced by `***`, both as written in the URL
/// and percent-decoded. For the error messages of the PostgreSQL and Redis clients, which
/// this crate does not write: whatever they say about a URL, its passwords stay out of logs.
pub fn scrub_passwords(text: &str, url: &str) -> String {
    let Some((parsed, _)) = parse(url) else {
        return text.replace(url, REDACTED);
    };
    let mut secrets: Vec<String> = Vec::new();
    if let Some(password) = parsed.password() {
        secrets.push(password.to_owned());
        secrets.push(
            percent_encoding::percent_decode_str(password)
                .decode_utf8_lossy()
                .into_owned(),
        );
    }
    for (key, value) in parsed.query_pairs() {
        if is_secret_parameter(&key) {
            secrets.push(value.into_owned());
        }
    }
    if let Some(query) = parsed.query() {
        // As written, before decoding: `%2F` or `+` in place of `/` or a space.
        secrets.extend(query.split('&').filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            is_secret_parameter(key).then(|| value.to_owned())
        }));
    }
    // The longest first, so that no part of a longer one survives a shorter one's replacement.
    secrets.retain(|secret| !secret.is_empty());
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets.iter().fold(text.to_owned(), |text, secret| {
        text.replace(secret.as_str(), REDACTED)
    })
}

fn is_secret_parameter(key: &str) -> bool {
    SECRET_PARAMETERS.contains(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_before_the_host_is_replaced_and_the_rest_kept() {
        assert_eq!(
            redact_url("postgresql://rbac:hunter2@db:5432/rbac?sslmode=verify-full"),
            "postgresql://rbac:***@db:5432/rbac?sslmode=verify-full"
        );
        assert_eq!(
            redact_url("redis://default:hunter2@cache:6379/0"),
            "redis://default:***@cache:6379/0"
        );
    }

    #[test]
    fn a_percent_encoded_password_is_replaced_whole() {
        let shown = redact_url("postgres://rbac:p%40ss%2Fw%3Ard@db/rbac");
        assert_eq!(shown, "postgres://rbac:***@db/rbac");
    }

    #[test]
    fn a_password_given_as_a_query_parameter_is_replaced() {
        let shown = redact_url("postgres://rbac@db/rbac?sslmode=require&password=hunter%202");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("sslmode=require"), "{shown}");
        let shown = redact_url("redis+unix:///run/redis.sock?db=1&pass=hunter2");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db=1"), "{shown}");
    }

    #[test]
    fn a_url_without_a_password_is_shown_as_it_is() {
        for url in [
            "postgres://rbac@db:5432/rbac?sslmode=require",
            "rediss://cache:6380/#insecure",
            "redis://127.0.0.1:6379",
        ] {
            assert_eq!(
                url::Url::parse(&redact_url(url)).unwrap(),
                url::Url::parse(url).unwrap()
            );
        }
    }

    #[test]
    fn a_url_that_does_not_parse_is_not_shown_at_all() {
        let shown = redact_url("postgres://rbac:hunter2@db:notaport/rbac");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn passwords_are_scrubbed_from_a_message_as_written_and_decoded() {
        let url = "postgres://rbac:p%40ss@db/rbac?password=q%2Bw+x";
        let message = "could not log in with p%40ss, p@ss, q%2Bw+x or q+w x";
        assert_eq!(
            scrub_passwords(message, url),
            "could not log in with ***, ***, *** or ***"
        );
    }

    #[test]
    fn a_url_with_several_hosts_has_its_password_replaced_and_its_hosts_kept() {
        assert_eq!(
            redact_url("redis+sentinel://rbac:hunter2@s1:26379,s2:26379,[::1]:26379/mymaster/1"),
            "redis+sentinel://rbac:***@s1:26379,s2:26379,[::1]:26379/mymaster/1"
        );
        assert_eq!(
            redact_url("rediss+cluster://:p%40ss@n1:7000,n2:7001#insecure"),
            "rediss+cluster://:***@n1:7000,n2:7001#insecure"
        );
        assert_eq!(
            redact_url("redis+cluster://n1:7000,n2:7001"),
            "redis+cluster://n1:7000,n2:7001"
        );
        assert_eq!(
            redact_url("redis+sentinel://rbac@s1,s2/mymaster"),
            "redis+sentinel://rbac@s1,s2/mymaster"
        );
        // The url crate reads a single host itself.
        assert_eq!(
            redact_url("redis+sentinel://:hunter2@s1:26379/mymaster"),
            "redis+sentinel://:***@s1:26379/mymaster"
        );
        let shown = redact_url("redis+cluster://u:hunter2@n1,n2?pass=hunter3");
        assert!(!shown.contains("hunter"), "{shown}");
    }

    #[test]
    fn a_password_in_a_url_with_several_hosts_is_scrubbed_from_a_message() {
        let url = "redis+sentinel://rbac:p%40ss@s1:26379,s2:26379/mymaster";
        assert_eq!(
            scrub_passwords("AUTH failed for p@ss (p%40ss)", url),
            "AUTH failed for *** (***)"
        );
    }

    #[test]
    fn a_message_about_a_url_without_passwords_is_left_as_it_is() {
        let message = "connection refused (os error 111)";
        assert_eq!(scrub_passwords(message, "redis://127.0.0.1:6379"), message);
    }
}
