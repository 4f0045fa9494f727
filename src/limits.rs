//! The open-file limit: every connection is a file descriptor.
//!
//! Linux starts most processes with a soft limit of 1024 descriptors, far below
//! the thousands of clients progjar serves, while the hard limit is usually much
//! higher. A process may raise its own soft limit up to the hard one, so the
//! server and the stress tool do that first and size themselves to the result.

use std::io;

/// The open-file limits before and after [`raise_nofile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimits {
    /// The soft limit the process started with.
    pub soft_before: u64,
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit: the most an unprivileged process may raise the soft one to.
    pub hard: u64,
}

/// Raise the soft open-file limit to the hard limit and report both.
pub fn raise_nofile() -> io::Result<NofileLimits> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and keeps no pointer to it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let soft_before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok(NofileLimits { soft_before, soft: lim.rlim_cur, hard: lim.rlim_max })
}
