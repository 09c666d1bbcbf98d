//! The benchmark dataset, deterministic, shared by the in-process benches and the seeding tool:
//! standard tenants (20 groups x 50 permissions, 500 users in 2 groups each), one large
//! tenant (10,000 groups x 10 permissions, 100,000 users in 10 groups each: 1,000,000
//! assignments), and for the many-tenants section 100,000 small tenants (2 groups, 2
//! permissions, 4 assignments).
#![allow(dead_code)]

/// One tenant's rows, as the store holds them.
#[derive(Clone)]
pub struct TenantRows {
    pub tenant: String,
    pub groups: Vec<String>,
    /// (group, resource, action)
    pub permissions: Vec<(String, String, String)>,
    /// (group, user)
    pub assignments: Vec<(String, String)>,
}

pub struct Shape {
    pub groups: usize,
    pub permissions_per_group: usize,
    pub users: usize,
    pub groups_per_user: usize,
}

pub const STANDARD: Shape = Shape {
    groups: 20,
    permissions_per_group: 50,
    users: 500,
    groups_per_user: 2,
};

pub const LARGE: Shape = Shape {
    groups: 10_000,
    permissions_per_group: 10,
    users: 100_000,
    groups_per_user: 10,
};

/// The many-tenants section's tenants: 2 groups of one permission each, 2 users in both (4
/// assignments).
pub const SMALL: Shape = Shape {
    groups: 2,
    permissions_per_group: 1,
    users: 2,
    groups_per_user: 2,
};

pub const SMALL_TENANTS: usize = 100_000;

pub fn small_tenant(i: usize) -> String {
    format!("small-{i:06}")
}

pub const STANDARD_TENANTS: usize = 100;
pub const LARGE_TENANT: &str = "large";

pub fn standard_tenant(i: usize) -> String {
    format!("tenant-{i:03}")
}

pub fn group(g: usize) -> String {
    format!("group-{g:05}")
}

pub fn user(u: usize) -> String {
    format!("user-{u:06}")
}

/// The permissions of group `g`: mostly exact resources with one action, a fifth of them
/// prefix patterns with any action.
pub fn permission(g: usize, p: usize) -> (String, String) {
    if p % 5 == 4 {
        (format!("projects/{g}/{p}/*"), "*".to_string())
    } else {
        let action = ["read", "write", "delete", "share"][p % 4];
        (format!("docs/{g}/{p}"), action.to_string())
    }
}

/// The groups user `u` belongs to.
pub fn groups_of(shape: &Shape, u: usize) -> impl Iterator<Item = usize> + '_ {
    (0..shape.groups_per_user).map(move |k| (u * 7919 + k * 104_729) % shape.groups)
}

pub fn rows(tenant: &str, shape: &Shape) -> TenantRows {
    let groups: Vec<String> = (0..shape.groups).map(group).collect();
    let mut permissions = Vec::with_capacity(shape.groups * shape.permissions_per_group);
    for g in 0..shape.groups {
        for p in 0..shape.permissions_per_group {
            let (resource, action) = permission(g, p);
            permissions.push((group(g), resource, action));
        }
    }
    let mut assignments = Vec::with_capacity(shape.users * shape.groups_per_user);
    for u in 0..shape.users {
        let mut seen = Vec::with_capacity(shape.groups_per_user);
        for g in groups_of(shape, u) {
            if !seen.contains(&g) {
                seen.push(g);
                assignments.push((group(g), user(u)));
            }
        }
    }
    TenantRows {
        tenant: tenant.to_string(),
        groups,
        permissions,
        assignments,
    }
}

/// A check request: (user, resource, action) and whether it should be allowed. Every other
/// one is allowed; the denied ones miss by resource, by action, or by user.
pub fn check(shape: &Shape, n: usize) -> (String, String, String, bool) {
    let u = (n * 2_654_435_761) % shape.users;
    let g = groups_of(shape, u).nth(n % shape.groups_per_user).unwrap();
    let mut p = (n / 3) % shape.permissions_per_group;
    if n % 6 == 3 && p % 5 == 4 {
        // Denied by action needs a permission with one named action, not `*`.
        p -= 1;
    }
    let (resource, action) = permission(g, p);
    let resource = resource.replace('*', "file.txt");
    let action = if action == "*" {
        "read".to_string()
    } else {
        action
    };
    match n % 6 {
        0 | 2 | 4 => (user(u), resource, action, true),
        1 => (user(u), format!("missing/{resource}"), action, false),
        3 => (user(u), resource, "admin".to_string(), false),
        _ => (format!("stranger-{n}"), resource, action, false),
    }
}
