//! Logging: tracing to stdout, as text for people or JSON for machines, filtered by RUST_LOG.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;

use crate::config::LogFormat;

/// Installs the global subscriber. Without RUST_LOG, the server logs at info and its
/// dependencies only warn.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,redis=warn"));
    // Colour codes only for a person at a terminal, never in a file or a log collector.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout);
    match format {
        LogFormat::Text => builder.fmt_fields(QuotedFields).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Text-format fields that no value can forge: tenant names, error messages and everything
/// else a client can put in a field are written `name="value"`, quoted and escaped, unless
/// they are plainly one word. The default format writes `%value` fields as they are, so a
/// tenant named `x revision=9` read as two fields.
pub struct QuotedFields;

impl<'a> MakeVisitor<Writer<'a>> for QuotedFields {
    type Visitor = QuotedVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> QuotedVisitor<'a> {
        QuotedVisitor {
            writer: target,
            first: true,
            result: Ok(()),
        }
    }
}

pub struct QuotedVisitor<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl QuotedVisitor<'_> {
    fn write(&mut self, field: &Field, value: &str, verbatim: bool) {
        if self.result.is_err() {
            return;
        }
        let separator = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        self.result = if field.name() == "message" {
            // The message is the call site's own text; only its control characters could
            // break a line.
            write!(self.writer, "{separator}{}", Escaped(value))
        } else if verbatim || is_word(value) {
            write!(self.writer, "{separator}{}={value}", field.name())
        } else {
            write!(self.writer, "{separator}{}={value:?}", field.name())
        };
    }
}

impl Visit for QuotedVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value, false);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"), false);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.write(field, &value.to_string(), false);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, &value.to_string(), true);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, &value.to_string(), true);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, if value { "true" } else { "false" }, true);
    }
}

impl VisitOutput<fmt::Result> for QuotedVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for QuotedVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// A value that reads as itself unquoted: printable ASCII with no space, quote, backslash or
/// `=`, and not empty.
fn is_word(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'='))
}

/// Text with its control characters escaped as in a Rust string literal.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    fn logged(event: impl FnOnce()) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_writer(captured.clone())
            .fmt_fields(QuotedFields)
            .finish();
        tracing::subscriber::with_default(subscriber, event);
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn values_a_client_chose_cannot_add_fields_or_lines() {
        let tenant = "evil revision=999 actor=token:x";
        let line = logged(|| {
            let error = std::io::Error::other("group 'a\nb' does not exist");
            let span = tracing::info_span!("request", tenant = tracing::field::Empty);
            span.record("tenant", tenant);
            let _entered = span.enter();
            tracing::info!(%tenant, revision = 3, error = %error, plain = "acme", "write\ncommitted");
        });
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(
            line.contains(r#"tenant="evil revision=999 actor=token:x""#),
            "{line}"
        );
        assert!(line.contains(" revision=3 "), "{line}");
        let quoted = r#""evil revision=999 actor=token:x""#;
        assert!(!line.replace(quoted, "").contains("revision=999"), "{line}");
        assert!(
            line.contains(r#"error="group 'a\nb' does not exist""#),
            "{line}"
        );
        assert!(line.contains("plain=acme"), "{line}");
        assert!(line.contains(r"write\ncommitted"), "{line}");
        // The span's fields, written once when recorded, are quoted alike.
        assert!(
            line.contains(r#"request{tenant="evil revision=999 actor=token:x"}"#),
            "{line}"
        );
    }
}
