//! What the machine, or the container around the process, allows it.

use sysinfo::{MemoryRefreshKind, ProcessRefreshKind, ProcessesToUpdate, RefreshKind, System};

/// The memory this process may use, in bytes: the limit of its control group (a container's
/// or a service's memory limit, cgroup v1 or v2) when it has one, else the machine's memory.
/// None when neither can be read.
pub fn memory_limit() -> Option<u64> {
    let mut system = System::new_with_specifics(
        RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()),
    )
    .ok()?;
    let machine = Some(system.total_memory()).filter(|&bytes| bytes > 0);
    let group = sysinfo::get_current_pid().ok().and_then(|pid| {
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing(),
        );
        system.process(pid)?.cgroup_limits()
    });
    let group = group
        .map(|limits| limits.total_memory)
        .filter(|&bytes| bytes > 0);
    [machine, group].into_iter().flatten().min()
}

/// Raises this process's limit on open files to the most it may have, as servers that hold many
/// connections do, and returns the limit now in force. None where it cannot be read.
pub fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// A write past a file-size limit (`ulimit -f`) fails with an error, rather than killing the
/// process with SIGXFSZ, its default, without a log line.
pub fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to "ignore" installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_some_memory_and_no_more_than_the_machine_has() {
        let limit = memory_limit().expect("a Linux machine tells its memory");
        let machine = std::fs::read_to_string("/proc/meminfo")
            .unwrap()
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|kib| kib.trim().trim_end_matches(" kB").parse::<u64>().ok())
            .unwrap()
            * 1024;
        assert!(limit > 0 && limit <= machine, "{limit} of {machine}");
    }
}
