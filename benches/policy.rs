//! In-process benchmarks of the policy model: the check on a standard and on the large tenant,
//! and on the standard tenant with its users four nestings below their groups' permissions;
//! building a tenant from its rows (what a full load does after the query), applying one
//! change to the large tenant the way an instance does (copy, change, swap), a nesting and an
//! unnesting among them, and the first page of each listing of the large tenant.
//!
//! `cargo bench --bench policy`; `scripts/bench.sh` runs it with the rest of the suite.

#[path = "support/dataset.rs"]
mod dataset;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rbac_server::policy::{
    Action, Change, GroupName, Permission, Resource, TenantPolicy, UnixMillis, UserName,
};

use dataset::{LARGE, STANDARD, Shape, TenantRows};

fn build(rows: &TenantRows) -> TenantPolicy {
    let mut policy = TenantPolicy::default();
    for group in &rows.groups {
        policy.apply(&Change::CreateGroup {
            group: GroupName::parse("group", group).unwrap(),
        });
    }
    for (group, resource, action) in &rows.permissions {
        policy.apply(&Change::AddPermission {
            group: GroupName::parse("group", group).unwrap(),
            permission: Permission {
                resource: Resource::parse("resource", resource).unwrap(),
                action: Action::parse("action", action).unwrap(),
            },
        });
    }
    for (group, user) in &rows.assignments {
        policy.apply(&Change::AssignUser {
            group: GroupName::parse("group", group).unwrap(),
            user: UserName::parse("user", user).unwrap(),
            expires_at: None,
        });
    }
    policy
}

/// `rows` with each user moved `depth - 1` groups below the groups it was in: each group
/// holds its permissions at the top of a chain of `depth` groups, each nested in the next,
/// and its members are members of the bottom one. Every check answers as on `rows`.
fn build_nested(rows: &TenantRows, depth: usize) -> TenantPolicy {
    let name = |group: &str, level: usize| {
        let name = if level == 0 {
            group.to_owned()
        } else {
            format!("{group}/below-{level}")
        };
        GroupName::parse("group", &name).unwrap()
    };
    let mut flat = rows.clone();
    let assignments = std::mem::take(&mut flat.assignments);
    let mut policy = build(&flat);
    for group in &rows.groups {
        for level in 1..depth {
            policy.apply(&Change::CreateGroup {
                group: name(group, level),
            });
            assert!(policy.apply(&Change::NestGroup {
                group: name(group, level),
                parent: name(group, level - 1),
            }));
        }
    }
    for (group, user) in &assignments {
        policy.apply(&Change::AssignUser {
            group: name(group, depth - 1),
            user: UserName::parse("user", user).unwrap(),
            expires_at: None,
        });
    }
    policy
}

const CHECKS: usize = 4096;

fn checks(shape: &Shape, policy: &TenantPolicy) -> Vec<(String, String, String)> {
    (0..CHECKS)
        .map(|n| {
            let (user, resource, action, expected) = dataset::check(shape, n);
            // The benchmark measures the right thing only if the answers are right.
            assert_eq!(
                policy.allows(&user, &resource, &action, UnixMillis(0)),
                expected,
                "{user} {resource} {action}"
            );
            (user, resource, action)
        })
        .collect()
}

fn bench_checks(c: &mut Criterion, name: &str, shape: &Shape, policy: &TenantPolicy) {
    let requests = checks(shape, policy);
    let mut group = c.benchmark_group("check");
    group.throughput(Throughput::Elements(CHECKS as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut allowed = 0usize;
            for (user, resource, action) in &requests {
                allowed +=
                    usize::from(policy.allows(black_box(user), resource, action, UnixMillis(0)));
            }
            allowed
        })
    });
    group.finish();
}

fn policy_benches(c: &mut Criterion) {
    let standard_rows = dataset::rows("standard", &STANDARD);
    let large_rows = dataset::rows(dataset::LARGE_TENANT, &LARGE);
    let standard = build(&standard_rows);
    let large = build(&large_rows);
    assert_eq!(large.assignment_count(), 1_000_000);

    bench_checks(c, "standard", &STANDARD, &standard);
    bench_checks(c, "large", &LARGE, &large);
    let nested = build_nested(&standard_rows, 4);
    assert_eq!(nested.nesting_count(), 3 * STANDARD.groups);
    bench_checks(c, "standard_nested_4_deep", &STANDARD, &nested);

    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("standard", |b| b.iter(|| build(black_box(&standard_rows))));
    group.bench_function("large", |b| b.iter(|| build(black_box(&large_rows))));
    group.finish();

    // What an instance does for one change: copy the current policy, apply, swap.
    let mut group = c.benchmark_group("apply_one_change");
    group.sample_size(10);
    let change = Change::AssignUser {
        group: GroupName::parse("group", &dataset::group(42)).unwrap(),
        user: UserName::parse("user", "newcomer").unwrap(),
        expires_at: None,
    };
    // A nesting, and its undoing, between two groups of a hundred members each.
    let (inner, outer) = (
        GroupName::parse("group", &dataset::group(42)).unwrap(),
        GroupName::parse("group", &dataset::group(43)).unwrap(),
    );
    let nest = Change::NestGroup {
        group: inner.clone(),
        parent: outer.clone(),
    };
    let unnest = Change::UnnestGroup {
        group: inner,
        parent: outer,
    };
    let mut nested_large = large.clone();
    nested_large.advance(large.revision() + 1, &nest).unwrap();
    for (name, from, change) in [
        ("large", &large, &change),
        ("large_nest", &large, &nest),
        ("large_unnest", &nested_large, &unnest),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || (),
                |()| {
                    let mut next = from.clone();
                    next.advance(from.revision() + 1, change).unwrap();
                    next
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();

    // A page of 100, as the listings answer by default.
    let mut group = c.benchmark_group("page_of_100");
    group.sample_size(10);
    let listed = GroupName::parse("group", &dataset::group(42)).unwrap();
    assert_eq!(large.group_page(None, 100).items.len(), 100);
    assert_eq!(
        large.member_page(&listed, None, 100).unwrap().items.len(),
        100
    );
    group.bench_function("groups", |b| b.iter(|| large.group_page(None, 100)));
    group.bench_function("group_permissions", |b| {
        b.iter(|| large.permission_page(&listed, None, 100))
    });
    group.bench_function("group_members", |b| {
        b.iter(|| large.member_page(&listed, None, 100))
    });
    group.finish();
}

criterion_group!(benches, policy_benches);
criterion_main!(benches);
