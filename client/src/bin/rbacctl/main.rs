//! rbacctl: rbac-server from the command line.
//!
//! Each subcommand is one call of [`rbac_client::Client`]. Answers print as tables, or as JSON
//! lines with `--json`. `check` exits 0 when allowed and 1 when denied, `status` 0 when the
//! instance is ready and 1 when not; a usage error is clap's, exit status 2; any other error
//! is one line on stderr, with the server's code when it refused, and exit status 3.

mod args;
mod show;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use futures_util::StreamExt;
use rbac_client::{Check, Client, Error, Format, PageRequest, Paged, WatchEvent};
use serde_json::Value;

use args::{Cli, Command, KeyCommand, Paging};
use show::Output;

/// A denied check, or an instance not ready.
const DENIED: u8 = 1;
/// Anything that went wrong.
const FAILED: u8 = 3;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Rust ignores SIGPIPE, which turns a closed pipe (`rbacctl changes --follow | head`)
    // into a panic at the next print; a command line ends quietly instead, as others do.
    #[cfg(unix)]
    // SAFETY: before any thread is started; SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "rbacctl",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let out = Output { json: cli.json };
    let client = match Client::new(&cli.url, cli.token.as_deref()) {
        Ok(client) => client,
        Err(e) => return failed(&e.into()),
    };
    match run(&client, cli.command, &out).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => failed(&e),
    }
}

/// Why a command did not do what it was asked.
enum Failure {
    Client(Box<Error>),
    /// Its input: a file that cannot be read, a document that is not JSON.
    Input(String),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Client(Box::new(error))
    }
}

fn failed(failure: &Failure) -> ExitCode {
    let line = match failure {
        Failure::Client(error) => match error.as_ref() {
            Error::Api { code, message, .. } => format!("{code}: {message}"),
            other => other.to_string(),
        },
        Failure::Input(problem) => problem.clone(),
    };
    eprintln!("rbacctl: {}", line.replace('\n', " "));
    ExitCode::from(FAILED)
}

async fn run(client: &Client, command: Command, out: &Output) -> Result<u8, Failure> {
    match command {
        Command::Check {
            tenant,
            user,
            resource,
            action,
            explain,
        } => {
            let mut check = Check::new(&tenant, &user, &resource, &action);
            check.explain = explain;
            let answer = client.check(&check).await?;
            out.check(&answer);
            return Ok(if answer.allowed { 0 } else { DENIED });
        }
        Command::Grant(p) => out.changed(
            &client
                .add_permission(&p.tenant, &p.group, &p.resource, &p.action)
                .await?,
        ),
        Command::Revoke(p) => out.changed(
            &client
                .remove_permission(&p.tenant, &p.group, &p.resource, &p.action)
                .await?,
        ),
        Command::Assign {
            tenant,
            group,
            user,
            expires_at,
        } => out.changed(
            &client
                .assign_user(&tenant, &group, &user, expires_at.as_deref())
                .await?,
        ),
        Command::Unassign {
            tenant,
            group,
            user,
        } => out.changed(&client.unassign_user(&tenant, &group, &user).await?),
        Command::CreateGroup { tenant, group } => {
            out.created(&client.create_group(&tenant, &group).await?)
        }
        Command::DeleteGroup { tenant, group } => {
            out.changed(&client.delete_group(&tenant, &group).await?)
        }
        Command::Nest(n) => out.changed(&client.nest_group(&n.tenant, &n.group, &n.parent).await?),
        Command::Unnest(n) => {
            out.changed(&client.unnest_group(&n.tenant, &n.group, &n.parent).await?)
        }
        Command::Groups { tenant, paging } => {
            let pages = pages(&paging, async |page| client.groups(&tenant, &page).await).await?;
            out.groups(&pages);
        }
        Command::Permissions {
            tenant,
            group,
            paging,
        } => {
            let pages = pages(&paging, async |page| {
                client.group_permissions(&tenant, &group, &page).await
            })
            .await?;
            out.permissions(&pages);
        }
        Command::Members {
            tenant,
            group,
            paging,
        } => {
            let pages = pages(&paging, async |page| {
                client.group_members(&tenant, &group, &page).await
            })
            .await?;
            out.members(&pages);
        }
        Command::WhoCan {
            tenant,
            resource,
            action,
            paging,
        } => {
            let pages = pages(&paging, async |page| {
                client.who_can(&tenant, &resource, &action, &page).await
            })
            .await?;
            out.who_can(&pages);
        }
        Command::Changes {
            tenant,
            after,
            limit,
            follow,
        } => {
            let mut after = after;
            loop {
                let page = client.changes(&tenant, after, limit).await?;
                out.changes(&page);
                match page.next_after {
                    Some(next) if follow || limit.is_none() => after = next,
                    _ => {
                        after = page.revision.max(after);
                        break;
                    }
                }
            }
            if follow {
                follow_changes(client, &tenant, after, out).await?;
            }
        }
        Command::Export {
            tenant,
            format,
            output,
        } => {
            let document = client.export(&tenant, format.into()).await?;
            match output {
                Some(path) => std::fs::write(&path, document).map_err(|e| io(&path, e))?,
                None => print!("{document}"),
            }
        }
        Command::Apply {
            file,
            format,
            dry_run,
            if_revision,
        } => {
            let bytes = if file.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                    .map_err(|e| io(&file, e))?;
                bytes
            } else {
                std::fs::read(&file).map_err(|e| io(&file, e))?
            };
            let format = format.map_or_else(|| Format::of_path(&file), Format::from);
            let document = with_options(bytes, format, dry_run, if_revision)?;
            out.applied(&client.apply(document, format).await?);
        }
        Command::Tenants { prefix, paging } => {
            let pages = pages(&paging, async |page| client.tenants(&prefix, &page).await).await?;
            out.tenants(&pages);
        }
        Command::Keys { command } => match command {
            KeyCommand::Create { tenant, role, name } => {
                out.new_key(&client.create_key(&tenant, &role, name.as_deref()).await?);
            }
            KeyCommand::List { paging } => {
                let pages = pages(&paging, async |page| client.keys(&page).await).await?;
                out.keys(&pages);
            }
            KeyCommand::Revoke { id } => out.revoked(&id, &client.revoke_key(&id).await?),
        },
        Command::Status => {
            let health = client.health().await?;
            let ready = match client.ready().await {
                Ok(_) => Ok(()),
                Err(Error::Api { message, .. }) => Err(message),
                Err(e) => return Err(e.into()),
            };
            let credential = client.credential().await?;
            let stats = client.cache_stats().await.ok();
            out.status(&health, &ready, &credential, stats.as_ref());
            return Ok(if ready.is_ok() { 0 } else { DENIED });
        }
        Command::Completions { .. } => {}
    }
    Ok(0)
}

/// Prints the tenant's changes after `after` as they happen, opening the stream again when
/// the server ends it, until it cannot (the server is gone, the credential revoked) or the
/// changes to come are no longer kept. A change is printed once, although a stream opened
/// again resends the changes of a revision it had sent only some of.
async fn follow_changes(
    client: &Client,
    tenant: &str,
    mut after: u64,
    out: &Output,
) -> Result<(), Failure> {
    // The revision received in part, and how many of its changes were printed.
    let mut open: Option<(u64, usize)> = None;
    loop {
        let mut events = Box::pin(client.watch(tenant, after).await?);
        // What this stream sends again: the changes printed of the revision left open.
        let resending = open;
        let mut resent = 0;
        while let Some(event) = events.next().await {
            match event? {
                WatchEvent::Change(change) => {
                    if let Some((revision, count)) = resending
                        && revision == change.revision
                        && resent < count
                    {
                        resent += 1;
                        continue;
                    }
                    out.change(&change);
                    if change.ends_revision == Some(false) {
                        let printed = open.filter(|&(revision, _)| revision == change.revision);
                        let count = printed.map_or(0, |(_, count)| count);
                        open = Some((change.revision, count + 1));
                    } else {
                        open = None;
                        after = change.revision;
                    }
                }
                WatchEvent::Reset { after: from } => after = from.max(after),
                WatchEvent::Expired { oldest_revision } => {
                    return Err(Failure::Input(format!(
                        "the changes after revision {after} are no longer kept (the oldest is \
                         {oldest_revision}): export the tenant and follow it from its revision"
                    )));
                }
            }
        }
    }
}

/// The pages a listing asks for: the one `paging` names, or with `--all` every page from it.
async fn pages<P: Paged>(
    paging: &Paging,
    mut fetch: impl AsyncFnMut(PageRequest) -> Result<P, Error>,
) -> Result<Vec<P>, Error> {
    let mut request = PageRequest {
        limit: paging.limit,
        cursor: paging.cursor.clone(),
    };
    let mut pages = Vec::new();
    loop {
        let page = fetch(request.clone()).await?;
        let cursor = page.next_cursor().map(str::to_owned);
        pages.push(page);
        match cursor {
            Some(cursor) if paging.all => request.cursor = Some(cursor),
            _ => return Ok(pages),
        }
    }
}

/// The document with `dry_run` and `if_revision` set as asked: in a JSON document its fields,
/// in a YAML one lines before it (a document that has them already is refused by the server,
/// which says so).
fn with_options(
    document: Vec<u8>,
    format: Format,
    dry_run: bool,
    if_revision: Option<u64>,
) -> Result<Vec<u8>, Failure> {
    if !dry_run && if_revision.is_none() {
        return Ok(document);
    }
    match format {
        Format::Json => {
            let mut value: Value = serde_json::from_slice(&document)
                .map_err(|e| Failure::Input(format!("the document is not JSON: {e}")))?;
            let Some(object) = value.as_object_mut() else {
                return Err(Failure::Input("the document is not a JSON object".into()));
            };
            if dry_run {
                object.insert("dry_run".into(), Value::Bool(true));
            }
            if let Some(revision) = if_revision {
                object.insert("if_revision".into(), revision.into());
            }
            Ok(value.to_string().into_bytes())
        }
        Format::Yaml => {
            let mut options = String::new();
            if dry_run {
                options.push_str("dry_run: true\n");
            }
            if let Some(revision) = if_revision {
                options.push_str(&format!("if_revision: {revision}\n"));
            }
            let text = String::from_utf8(document)
                .map_err(|_| Failure::Input("the document is not UTF-8".into()))?;
            let at = yaml_mapping_start(&text).ok_or_else(|| {
                Failure::Input(
                    "the document's top level is not a block mapping (`tenant: ...` at the \
                     start of a line): set dry_run or if_revision in it instead"
                        .into(),
                )
            })?;
            Ok(format!("{}{options}{}", &text[..at], &text[at..]).into_bytes())
        }
    }
}

/// Where the top-level keys of a YAML document start, after a byte-order mark, comments,
/// directives and a `---` of its own line: a line that begins at its first column with a
/// key. None when the top level is something else (a flow mapping, an indented one).
fn yaml_mapping_start(text: &str) -> Option<usize> {
    let mut at = text
        .strip_prefix('\u{feff}')
        .map_or(0, |_| '\u{feff}'.len_utf8());
    for line in text[at..].split_inclusive('\n') {
        let content = line.trim_end();
        let skipped = content.is_empty()
            || content.starts_with('#')
            || content.starts_with('%')
            || content == "---";
        if !skipped {
            let first = content.chars().next()?;
            return (!first.is_whitespace() && !"{[-?|>'\"&*!".contains(first)).then_some(at);
        }
        at += line.len();
    }
    None
}

fn io(path: &std::path::Path, error: std::io::Error) -> Failure {
    Failure::Input(format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_go_before_the_first_key_of_a_block_mapping() {
        for (document, at) in [
            ("tenant: a\n", 0),
            ("# policy\n\ntenant: a\n", 10),
            ("%YAML 1.2\n---\ntenant: a\n", 14),
            ("\u{feff}tenant: a\n", 3),
            ("---\n# c\ntenant: a\n", 8),
        ] {
            assert_eq!(yaml_mapping_start(document), Some(at), "{document:?}");
        }
        for document in [
            "{tenant: a}",
            "  tenant: a",
            "--- {tenant: a}",
            "- a",
            "",
            "# only",
        ] {
            assert_eq!(yaml_mapping_start(document), None, "{document:?}");
        }
    }
}
