//! How answers print: tables for people, JSON lines for scripts.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use rbac_client::{
    Applied, ChangeEntry, Changed, ChangesPage, CheckAnswer, Created, CredentialInfo, GroupsPage,
    Health, KeysPage, MembersPage, NewKey, Paged, PermissionsPage, Revoked, TenantsPage,
    WhoCanPage,
};
use serde::Serialize;
use serde_json::Value;

pub struct Output {
    pub json: bool,
}

/// A table with these column names; none, for a table of names and values.
fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if !header.is_empty() {
        table.set_header(header.iter().copied());
    }
    table
}

/// Where the next page starts, if there is one and it was not asked for.
fn more(pages: &[impl Paged]) {
    if let Some(cursor) = pages.last().and_then(Paged::next_cursor) {
        eprintln!("more: --cursor {cursor} (or --all)");
    }
}

impl Output {
    /// One answer as one line of JSON.
    fn line(&self, value: &impl Serialize) {
        println!("{}", serde_json::to_string(value).unwrap_or_default());
    }

    pub fn check(&self, answer: &CheckAnswer) {
        if self.json {
            return self.line(answer);
        }
        let verdict = if answer.allowed { "allowed" } else { "denied" };
        println!("{verdict} (revision {})", answer.revision);
        if let Some(because) = answer.because.as_ref().filter(|b| !b.is_empty()) {
            let mut table = table(&["GROUP", "RESOURCE", "ACTION", "THROUGH"]);
            for grant in because {
                let through = grant.through.as_ref().map(|t| t.join(" > "));
                table.add_row([
                    grant.group.as_str(),
                    &grant.resource,
                    &grant.action,
                    through.as_deref().unwrap_or(""),
                ]);
            }
            println!("{table}");
        }
    }

    pub fn changed(&self, answer: &Changed) {
        if self.json {
            return self.line(answer);
        }
        let what = if answer.changed {
            "changed"
        } else {
            "unchanged"
        };
        println!("{what} (revision {})", answer.revision);
    }

    pub fn created(&self, answer: &Created) {
        if self.json {
            return self.line(answer);
        }
        let what = if answer.created {
            "created"
        } else {
            "exists already"
        };
        println!("{what} (revision {})", answer.revision);
    }

    pub fn groups(&self, pages: &[GroupsPage]) {
        if self.json {
            return pages.iter().for_each(|page| self.line(page));
        }
        let mut table = table(&["GROUP", "PERMISSIONS", "MEMBERS"]);
        for group in pages.iter().flat_map(|page| &page.groups) {
            table.add_row([
                group.name.clone(),
                group.permission_count.to_string(),
                group.member_count.to_string(),
            ]);
        }
        println!("{table}");
        more(pages);
    }

    pub fn permissions(&self, pages: &[PermissionsPage]) {
        if self.json {
            return pages.iter().for_each(|page| self.line(page));
        }
        let mut table = table(&["RESOURCE", "ACTION"]);
        for permission in pages.iter().flat_map(|page| &page.permissions) {
            table.add_row([&permission.resource, &permission.action]);
        }
        println!("{table}");
        more(pages);
    }

    pub fn members(&self, pages: &[MembersPage]) {
        if self.json {
            return pages.iter().for_each(|page| self.line(page));
        }
        let mut table = table(&["USER", "ENDS"]);
        for page in pages {
            for user in &page.members {
                let ends = page.expiring.iter().find(|e| &e.user == user).map(|e| {
                    let past = if e.expired { " (ended)" } else { "" };
                    format!("{}{past}", e.expires_at)
                });
                table.add_row([user.clone(), ends.unwrap_or_default()]);
            }
        }
        println!("{table}");
        more(pages);
    }

    pub fn who_can(&self, pages: &[WhoCanPage]) {
        if self.json {
            return pages.iter().for_each(|page| self.line(page));
        }
        let mut table = table(&["USER"]);
        for user in pages.iter().flat_map(|page| &page.users) {
            table.add_row([user]);
        }
        println!("{table}");
        more(pages);
    }

    pub fn changes(&self, page: &ChangesPage) {
        page.changes.iter().for_each(|change| self.change(change));
    }

    /// One change, as a line: a stream of them can be read as it comes.
    pub fn change(&self, change: &ChangeEntry) {
        if self.json {
            return self.line(change);
        }
        let mut what = vec![change.group.clone()];
        if let Some(user) = &change.user {
            what.push(format!("user={user}"));
        }
        if let (Some(resource), Some(action)) = (&change.resource, &change.action) {
            what.push(format!("{resource} {action}"));
        }
        if let Some(parent) = &change.parent {
            what.push(format!("parent={parent}"));
        }
        if let Some(ends) = &change.expires_at {
            what.push(format!("until {ends}"));
        }
        println!(
            "{:>6}  {}  {:<17}  {}  by {} on {}",
            change.revision,
            change.at,
            change.operation,
            what.join(" "),
            change.actor.as_deref().unwrap_or("-"),
            change.server_id
        );
    }

    pub fn applied(&self, answer: &Applied) {
        if self.json {
            return self.line(answer);
        }
        let what = match (answer.dry_run, answer.changed) {
            (true, _) if answer.counts.is_empty() => "nothing would change",
            (true, _) => "would change",
            (false, true) => "changed",
            (false, false) => "unchanged",
        };
        println!("{what} (revision {})", answer.revision);
        for change in answer.changes.iter().flatten() {
            println!("  {}", describe(change));
        }
        if !answer.counts.is_empty() {
            let mut table = table(&["OPERATION", "CHANGES"]);
            for (operation, count) in &answer.counts {
                table.add_row([operation.clone(), count.to_string()]);
            }
            println!("{table}");
        }
    }

    pub fn tenants(&self, pages: &[TenantsPage]) {
        if self.json {
            return pages.iter().for_each(|page| self.line(page));
        }
        let mut table = table(&["TENANT", "REVISION", "GROUPS", "PERMISSIONS", "MEMBERSHIPS"]);
        for tenant in pages.iter().flat_map(|page| &page.tenants) {
            table.add_row([
                tenant.name.clone(),
                tenant.revision.to_string(),
                tenant.group_count.to_string(),
                tenant.permission_count.to_string(),
                tenant.assignment_count.to_string(),
            ]);
        }
        println!("{table}");
        more(pages);
    }

    pub fn new_key(&self, key: &NewKey) {
        if self.json {
            return self.line(key);
        }
        println!("{}", key.key);
        eprintln!(
            "key {} for tenant {} ({}): keep it now, it is not shown again",
            key.record.id, key.record.tenant, key.record.role
        );
    }

    pub fn keys(&self, pages: &[KeysPage]) {
        if self.json {
            return pages.iter().for_each(|page| self.line(page));
        }
        let mut table = table(&[
            "ID",
            "NAME",
            "TENANT",
            "ROLE",
            "CREATED",
            "REVOKED",
            "LAST USED",
        ]);
        for key in pages.iter().flat_map(|page| &page.keys) {
            table.add_row([
                key.id.clone(),
                key.name.clone().unwrap_or_default(),
                key.tenant.clone(),
                key.role.clone(),
                key.created_at.clone(),
                key.revoked_at.clone().unwrap_or_default(),
                key.last_used_at.clone().unwrap_or_default(),
            ]);
        }
        println!("{table}");
        more(pages);
    }

    pub fn revoked(&self, id: &str, answer: &Revoked) {
        if self.json {
            return self.line(answer);
        }
        let what = if answer.revoked {
            "revoked"
        } else {
            "was revoked already"
        };
        println!("key {id} {what}");
    }

    pub fn status(
        &self,
        health: &Health,
        ready: &Result<(), String>,
        credential: &CredentialInfo,
        stats: Option<&Value>,
    ) {
        if self.json {
            let ready = match ready {
                Ok(()) => serde_json::json!({"ready": true}),
                Err(why) => serde_json::json!({"ready": false, "why": why}),
            };
            return self.line(&serde_json::json!({"health": health, "ready": ready,
                "credential": credential, "cache": stats}));
        }
        let mut table = table(&[]);
        table.add_row(["server", &health.server_id]);
        table.add_row(["status", &health.status]);
        table.add_row(["store", &health.database]);
        table.add_row(["bus", &health.redis]);
        let ready = match ready {
            Ok(()) => "ready".to_owned(),
            Err(why) => why.clone(),
        };
        table.add_row(["ready", &ready]);
        let who = match &credential.credential {
            Some(c) => format!("{} ({}, tenant {})", c.actor, c.role, c.tenant),
            None => "none".to_owned(),
        };
        table.add_row(["credential", &who]);
        let may = &credential.may;
        let allowed: Vec<&str> = [
            (may.read, "read"),
            (may.write, "write"),
            (may.list_tenants, "list tenants"),
            (may.view_instance, "view the instance"),
            (may.manage_keys, "manage keys"),
        ]
        .into_iter()
        .filter_map(|(yes, what)| yes.then_some(what))
        .collect();
        table.add_row(["may", &allowed.join(", ")]);
        if let Some(stats) = stats {
            for field in [
                "tenants_known",
                "tenants_cached",
                "cache_bytes",
                "hits",
                "misses",
            ] {
                if let Some(value) = stats.get(field) {
                    table.add_row([field, &value.to_string()]);
                }
            }
        }
        println!("{table}");
    }
}

/// A change of a dry run, as a line.
fn describe(change: &Value) -> String {
    let field = |name: &str| change[name].as_str().unwrap_or_default().to_owned();
    let mut line = format!("{} {}", field("op"), field("group"));
    for name in ["user", "resource", "action", "parent", "expires_at"] {
        if let Some(value) = change[name].as_str() {
            line.push_str(&format!(" {name}={value}"));
        }
    }
    line
}
