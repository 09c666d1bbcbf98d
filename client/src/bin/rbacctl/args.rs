//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rbac_client::Format;

/// rbac-server from the command line: check access, change a tenant's policy, follow its
/// changes, keep it as a file.
#[derive(Debug, Parser)]
#[command(name = "rbacctl", version)]
pub struct Cli {
    /// The server, or the load balancer in front of several.
    #[arg(
        long,
        env = "RBAC_URL",
        default_value = "http://localhost:3000",
        global = true
    )]
    pub url: String,
    /// The credential: ADMIN_TOKEN, CHECK_TOKEN or an API key.
    #[arg(long, env = "RBAC_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the answers as JSON, one per line, instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// May the user do the action on the resource? Exits 0 if so, 1 if not.
    Check {
        #[arg(long, env = "RBAC_TENANT")]
        tenant: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        resource: String,
        #[arg(long)]
        action: String,
        /// Show the permissions the answer comes from.
        #[arg(long)]
        explain: bool,
    },
    /// Give a group a permission.
    Grant(PermissionArgs),
    /// Take a permission from a group.
    Revoke(PermissionArgs),
    /// Make a user a member of a group.
    Assign {
        #[arg(long, env = "RBAC_TENANT")]
        tenant: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        user: String,
        /// When the membership ends (RFC 3339, such as 2026-12-31T23:59:59Z).
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Remove a user from a group.
    Unassign {
        #[arg(long, env = "RBAC_TENANT")]
        tenant: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        user: String,
    },
    /// Create a group.
    CreateGroup {
        #[arg(long, env = "RBAC_TENANT")]
        tenant: String,
        #[arg(long)]
        group: String,
    },
    /// Delete a group, with its permissions, members and nestings.
    DeleteGroup {
        #[arg(long, env = "RBAC_TENANT")]
        tenant: String,
        #[arg(long)]
        group: String,
    },
    /// Nest a group in another: its members get the parent's permissions.
    Nest(NestingArgs),
    /// Take a group out of another.
    Unnest(NestingArgs),
    /// List a tenant's groups.
    Groups {
        #[arg(long, env = "RBAC_TENANT")]
        tenant: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// List a group's permissions.
    Permissions {
        #[arg(long, env = "RBAC_TENANT")]
        tenant: String,
        #[arg(long)]
        group: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// List a group's members, with the ends of their memberships.
    Members {
        #[arg(long, env = "RBAC_TENANT")]
        tenant: String,
        #[arg(long)]
        group: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// List the users who may do an action on a resource.
    WhoCan {
        #[arg(long, env = "RBAC_TENANT")]
        tenant: String,
        #[arg(long)]
        resource: String,
        #[arg(long)]
        action: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// A tenant's changes, oldest first; with --follow, then each as it happens.
    Changes {
        #[arg(long, env = "RBAC_TENANT")]
        tenant: String,
        /// Only the changes after this revision.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many revisions (default: all of them).
        #[arg(long)]
        limit: Option<u32>,
        /// Keep printing changes as they happen, until interrupted.
        #[arg(long)]
        follow: bool,
    },
    /// Write a tenant's whole policy as a document.
    Export {
        #[arg(long, env = "RBAC_TENANT")]
        tenant: String,
        #[arg(long, value_enum, default_value_t = DocumentFormat::Yaml)]
        format: DocumentFormat,
        /// The file to write (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Make the tenant a document names hold what it describes, as one write.
    Apply {
        /// The document (`-`: standard input); YAML if named .yaml or .yml, else JSON.
        #[arg(long, short)]
        file: PathBuf,
        /// The document's format, whatever its name.
        #[arg(long, value_enum)]
        format: Option<DocumentFormat>,
        /// Show what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply only if the tenant is at this revision.
        #[arg(long)]
        if_revision: Option<u64>,
    },
    /// List the tenants that exist.
    Tenants {
        /// Only those whose names start with this.
        #[arg(long, default_value = "")]
        prefix: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// Issue, list and revoke API keys (ADMIN_TOKEN only).
    Keys {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// How the instance is: health, readiness and its cache. Exits 1 when it is not ready.
    Status,
    /// Print a shell's completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Issue a key; its secret is shown once.
    Create {
        /// The tenant it reaches, or `*` for every tenant.
        #[arg(long)]
        tenant: String,
        #[arg(long, value_parser = ["admin", "check"])]
        role: String,
        /// What it is for.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the keys, without their secrets.
    List {
        #[command(flatten)]
        paging: Paging,
    },
    /// Revoke a key, on every instance.
    Revoke {
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct PermissionArgs {
    #[arg(long, env = "RBAC_TENANT")]
    pub tenant: String,
    #[arg(long)]
    pub group: String,
    #[arg(long)]
    pub resource: String,
    #[arg(long)]
    pub action: String,
}

#[derive(Debug, Args)]
pub struct NestingArgs {
    #[arg(long, env = "RBAC_TENANT")]
    pub tenant: String,
    /// The group that becomes (or stops being) a member.
    #[arg(long)]
    pub group: String,
    /// The group it is nested in.
    #[arg(long)]
    pub parent: String,
}

#[derive(Debug, Args)]
pub struct Paging {
    /// Items per page, 1 to 1000.
    #[arg(long)]
    pub limit: Option<u32>,
    /// Resume after the page that gave this cursor.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Every page, not just the first.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DocumentFormat {
    Json,
    Yaml,
}

impl From<DocumentFormat> for Format {
    fn from(format: DocumentFormat) -> Self {
        match format {
            DocumentFormat::Json => Format::Json,
            DocumentFormat::Yaml => Format::Yaml,
        }
    }
}
