//! What `/proc` says about a process or a socket: memory, CPU time,
//! descriptors, queues. Tests assert memory bounds and "does not spin" from
//! these, never speed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A `VmRSS`-style field of /proc/PID/status, in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status_field(&status, field).unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn status_field(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name, which ends at the last ')': state is
    // field 3, so utime (14) and stime (15) are the 12th and 13th.
    let rest = &stat[stat.rfind(')').expect("comm") + 1..];
    let fields: Vec<u64> =
        rest.split_whitespace().skip(11).take(2).map(|f| f.parse().unwrap()).collect();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .expect("sysconf(_SC_CLK_TCK)");
    Duration::from_secs_f64((fields[0] + fields[1]) as f64 / ticks as f64)
}

/// How many of a process's open descriptors are numbered below `limit`: the
/// ones that take a slot under RLIMIT_NOFILE (a descriptor inherited with a
/// high number, as some CI runners leak, does not).
pub fn fds_below(pid: u32, limit: usize) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
        .filter(|&fd| fd < limit)
        .count()
}

/// The send and receive queues (bytes) of the server's end of a connection,
/// from /proc/net/tcp: `rx` > 0 with a stalled sender means the server has
/// stopped reading it.
pub fn server_side_queues(server_port: u16, client_port: u16) -> Option<(u64, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5
            || local_port(f[1]) != Some(server_port)
            || local_port(f[2]) != Some(client_port)
        {
            return None;
        }
        let (tx, rx) = f[4].split_once(':')?;
        Some((u64::from_str_radix(tx, 16).ok()?, u64::from_str_radix(rx, 16).ok()?))
    })
}

/// How many connections the process `pid` holds on its listening `port`: the
/// sockets in its descriptor table that /proc/net/tcp{,6} lists with that
/// local port and not listening. Unlike a `(N open)` log line this counts
/// what the server has accepted and not yet closed, whatever it logs.
pub fn open_connections(pid: u32, port: u16) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    let inodes: HashSet<u64> = fds
        .filter_map(|e| {
            let target = std::fs::read_link(e.ok()?.path()).ok()?;
            let inode = target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?;
            inode.parse().ok()
        })
        .collect();
    let accepted = |line: &str| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Fields: local address, remote address, state (0A: listening), ..., inode.
        f.len() > 9
            && local_port(f[1]) == Some(port)
            && f[3] != "0A"
            && f[9].parse().is_ok_and(|inode: u64| inodes.contains(&inode))
    };
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .map(|table| table.lines().skip(1).filter(|l| accepted(l)).count())
        .sum()
}

/// The port of a /proc/net/tcp address (`0100007F:2710`).
fn local_port(field: &str) -> Option<u16> {
    u16::from_str_radix(field.rsplit(':').next()?, 16).ok()
}

/// Raise this test process's soft open-file limit to the hard one (the servers
/// it starts inherit it) and fail the test if that is still below `needed`.
pub fn raise_nofile(needed: u64) {
    let limits = progjar::limits::raise_nofile().expect("getrlimit(RLIMIT_NOFILE)");
    assert!(
        limits.soft >= needed,
        "this test needs {needed} descriptors; the open-file limit is {} (hard {})",
        limits.soft,
        limits.hard
    );
}

/// Samples a process's VmRSS every 10 ms on a thread; reports the peak.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RssSampler {
    /// Start sampling `pid`.
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&peak));
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                // The process may be gone: then there is nothing more to sample.
                let status = std::fs::read_to_string(format!("/proc/{pid}/status"));
                if let Some(kib) = status.ok().and_then(|st| status_field(&st, "VmRSS:")) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(10));
            }
        });
        RssSampler { stop, peak, thread: Some(thread) }
    }

    /// The highest VmRSS seen so far, in KiB.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
