//! `--max-pending-total`: one bound on the memory every client's unsent bytes take together.
//!
//! `--max-pending` bounds one connection, but 10000 connections × 4 MiB is
//! 40 GiB: a crowd of clients that send and never read would make an
//! allocation fail, and a failed allocation aborts the whole process, every
//! client with it. So the server also keeps a [`Budget`]: the bytes all
//! pending buffers hold (their capacity, since that is the memory, not just
//! the bytes in it). While it is spent, a connection that owes its client
//! bytes stops reading, exactly the per-connection backpressure applied to
//! everyone at once; a client that owes nothing is still served. Nothing is
//! dropped: the clients' bytes wait in the kernel and their TCP windows close.
//!
//! Edge-triggered readiness announces a socket's data once, so a connection
//! paused here would never hear of its data again. It is put on a waiting
//! list instead, and the loop gives the connections on it a turn, in order,
//! as the budget drains: O(1) per turn, never a scan.
//!
//! **The real bound.** A client that owes nothing may always read, and the rest
//! of a read its socket will not take must be kept; a connection that owes
//! bytes may read only while the budget is not spent, and grows its buffer by
//! at most the budget's room plus one read. So the bytes held for pending
//! data never exceed `--max-pending-total + (open connections + 1) × one read`
//! (`--read-size`, 64 KiB by default: 625 MiB more at 10000 connections, 12.5
//! MiB at 200). One exception, for a connection whose TCP stalled while it
//! waited: it may read what the kernel holds for it (`stall.rs`).
//!
//! The default is derived from the memory the process may use ([`default_total`]).

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};

use nix::sys::resource::{getrlimit, Resource};
use nix::unistd::{sysconf, SysconfVar};

use crate::units;

/// Global pending memory: how much is held, the bound, and who waits for room.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: usize,
    /// Room opened past `limit` for one turn of a stalled connection
    /// (`stall.rs`); 0 otherwise.
    grant: usize,
    /// Connections (slab keys) that stopped reading because the budget was
    /// spent, oldest first.
    waiting: VecDeque<usize>,
    /// `queued[key]`: whether `key` is on `waiting`, so that no key is listed
    /// twice and the list never holds more than one entry per slab slot.
    queued: Vec<bool>,
}

impl Budget {
    /// A budget of `limit` bytes for at most `connections` connections. The
    /// waiting list is sized once here, so that the loop never allocates for it.
    pub fn new(limit: usize, connections: usize) -> Budget {
        Budget {
            limit,
            used: 0,
            grant: 0,
            waiting: VecDeque::with_capacity(connections),
            queued: vec![false; connections],
        }
    }

    /// The bound, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used
    }

    /// True once the bound is reached: connections that owe bytes stop reading.
    pub fn spent(&self) -> bool {
        self.used >= self.limit.saturating_add(self.grant)
    }

    /// How much more may be held before the bound is reached.
    pub fn room(&self) -> usize {
        self.limit.saturating_add(self.grant).saturating_sub(self.used)
    }

    /// Open room for `bytes` more, whatever is held now, until [`end_grant`]:
    /// for the one turn of a stalled connection (`stall.rs`).
    ///
    /// [`end_grant`]: Budget::end_grant
    pub fn grant(&mut self, bytes: usize) {
        self.grant = self.used.saturating_sub(self.limit).saturating_add(bytes);
    }

    /// The bound is `limit` again.
    pub fn end_grant(&mut self) {
        self.grant = 0;
    }

    /// A pending buffer grew by `bytes`.
    pub fn charge(&mut self, bytes: usize) {
        self.used += bytes;
    }

    /// A pending buffer gave `bytes` back.
    pub fn refund(&mut self, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
    }

    /// Connection `key` stopped reading for want of room: come back to it
    /// when there is some.
    pub fn wait(&mut self, key: usize) {
        match self.queued.get_mut(key) {
            Some(queued) if !*queued => {
                *queued = true;
                // Never reallocates: at most one entry per slot, and the
                // capacity is the number of slots.
                self.waiting.push_back(key);
            }
            _ => {}
        }
    }

    /// How many connections wait for room.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The `i`th connection waiting for room, oldest first, without taking it
    /// off the list.
    pub fn waiting_key(&self, i: usize) -> Option<usize> {
        self.waiting.get(i).copied()
    }

    /// The connection that has waited longest, if there is room for it. The
    /// key may have closed (or been reused) since: its turn is then spurious,
    /// which every connection's handler takes in its stride.
    pub fn next_waiting(&mut self) -> Option<usize> {
        if self.spent() {
            return None;
        }
        let key = self.waiting.pop_front()?;
        self.queued[key] = false;
        Some(key)
    }
}

/// The share of a memory limit the pending bytes may take: half. The limit
/// covers the whole process: code, stacks, the allocator's reserved arenas
/// (glibc reserves 64 MiB of address space per thread that allocates), its
/// fragmentation and the copy a growing buffer needs, the connection table,
/// the one read per connection beyond the budget, and under a cgroup the
/// kernel's socket buffers too. Half leaves all of that room.
const SHARE_OF_LIMIT: u64 = 2;

/// The share of physical memory when nothing limits the process: a quarter,
/// because the machine is shared and the kernel's socket buffers for the same
/// clients come out of the same memory.
const SHARE_OF_RAM: u64 = 4;

/// Used when nothing can be read at all (not even the physical memory size).
const FALLBACK_TOTAL: u64 = 1 << 30;

/// `--max-pending-total`'s default, and the words saying where it came from.
///
/// Half of the smallest limit set on the process (cgroup `memory.max`, cgroup
/// v1 `memory.limit_in_bytes`, `RLIMIT_AS`), else a quarter of physical memory.
pub fn default_total() -> (usize, String) {
    let limits = [
        cgroup_limit().map(|b| (b, "the cgroup's memory limit")),
        address_space_limit().map(|b| (b, "the address-space limit (RLIMIT_AS)")),
    ];
    let (bytes, why) = match limits.into_iter().flatten().min_by_key(|(b, _)| *b) {
        Some((b, what)) => (b / SHARE_OF_LIMIT, format!("half of {what}, {}", units::bytes(b))),
        None => match physical_memory() {
            Some(b) => {
                (b / SHARE_OF_RAM, format!("a quarter of physical memory, {}", units::bytes(b)))
            }
            None => (FALLBACK_TOTAL, "physical memory unknown".to_string()),
        },
    };
    (usize::try_from(bytes).unwrap_or(usize::MAX).max(1), why)
}

/// Values at or above this mean "no limit" (cgroup v1 writes 2^63 rounded to a page).
const UNLIMITED: u64 = 1 << 60;

/// `RLIMIT_AS`, when set.
fn address_space_limit() -> Option<u64> {
    let (soft, _) = getrlimit(Resource::RLIMIT_AS).ok()?;
    (soft != libc::RLIM_INFINITY && soft < UNLIMITED).then_some(soft)
}

/// `sysconf`'s physical pages × page size.
fn physical_memory() -> Option<u64> {
    let pages = sysconf(SysconfVar::_PHYS_PAGES).ok()??;
    let size = sysconf(SysconfVar::PAGE_SIZE).ok()??;
    let bytes = u64::try_from(pages).ok()?.checked_mul(u64::try_from(size).ok()?)?;
    (bytes > 0).then_some(bytes)
}

/// The memory limit of this process's cgroup: the smallest `memory.max` from
/// its cgroup v2 directory up to the mount's root (a parent's limit binds its
/// children), or cgroup v1's `hierarchical_memory_limit`, which already is
/// that minimum.
fn cgroup_limit() -> Option<u64> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let membership = fs::read_to_string("/proc/self/cgroup").ok()?;
    let v2 = cgroup_dir(&mountinfo, &membership, "cgroup2", "").and_then(|(leaf, top)| {
        leaf.ancestors()
            .take_while(|dir| dir.starts_with(&top))
            .filter_map(|dir| read_limit(&dir.join("memory.max")))
            .min()
    });
    let v1 = cgroup_dir(&mountinfo, &membership, "cgroup", "memory").and_then(|(leaf, _)| {
        let stat = fs::read_to_string(leaf.join("memory.stat")).ok()?;
        let line = stat.lines().find_map(|l| l.strip_prefix("hierarchical_memory_limit "))?;
        line.trim().parse().ok().filter(|&b| b < UNLIMITED)
    });
    [v2, v1].into_iter().flatten().min()
}

/// A limit file's value: a number of bytes, or `max` (no limit).
fn read_limit(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok().filter(|&b| b < UNLIMITED)
}

/// Where this process's cgroup directory is, for the hierarchy mounted with
/// file-system type `fstype` (and, for v1, controller `controller`): the
/// directory and the mount point above which it must not look.
///
/// `/proc/self/cgroup` gives the path within the hierarchy (`0::/a/b` for v2,
/// `4:memory:/a/b` for v1); `/proc/self/mountinfo` gives where that hierarchy
/// is mounted and which of its directories the mount shows (a container
/// mounts only its own).
fn cgroup_dir(
    mountinfo: &str,
    membership: &str,
    fstype: &str,
    controller: &str,
) -> Option<(PathBuf, PathBuf)> {
    let path = membership.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = if controller.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        wanted.then_some(path)
    })?;
    mountinfo.lines().find_map(|line| {
        let (fields, after) = line.split_once(" - ")?;
        let mut after = after.split(' ');
        let (kind, _, options) = (after.next()?, after.next()?, after.next().unwrap_or(""));
        let fields: Vec<&str> = fields.split(' ').collect();
        let (root, mount) = (*fields.get(3)?, *fields.get(4)?);
        let right = kind == fstype
            && (controller.is_empty() || options.split(',').any(|o| o == controller));
        let inside = Path::new(path).strip_prefix(root).ok()?;
        right.then(|| (Path::new(mount).join(inside), PathBuf::from(mount)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_list_is_fair_and_never_lists_a_key_twice() {
        let mut b = Budget::new(100, 8);
        b.charge(100);
        b.wait(3);
        b.wait(5);
        b.wait(3);
        assert_eq!(b.waiting(), 2);
        assert_eq!(b.next_waiting(), None, "no room yet");
        b.refund(10);
        assert_eq!(b.next_waiting(), Some(3));
        b.wait(3);
        assert_eq!(b.next_waiting(), Some(5));
        assert_eq!(b.next_waiting(), Some(3));
        assert_eq!(b.next_waiting(), None);
        b.wait(99); // beyond the table: ignored, never a panic
        assert_eq!(b.waiting(), 0);
    }

    #[test]
    fn finds_the_cgroup_directory_of_either_version() {
        let mountinfo = "\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 /ctr /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";
        let membership = "4:memory:/a/b\n0::/ctr/app\n";
        assert_eq!(
            cgroup_dir(mountinfo, membership, "cgroup2", ""),
            Some(("/sys/fs/cgroup/unified/app".into(), "/sys/fs/cgroup/unified".into()))
        );
        assert_eq!(
            cgroup_dir(mountinfo, membership, "cgroup", "memory").map(|d| d.0),
            Some("/sys/fs/cgroup/memory/a/b".into())
        );
        assert_eq!(cgroup_dir(mountinfo, "0::/\n", "cgroup", "memory"), None);
    }

    #[test]
    fn default_is_a_sane_size() {
        let (bytes, why) = default_total();
        assert!(bytes >= 1 << 20, "{bytes} ({why})");
    }
}
