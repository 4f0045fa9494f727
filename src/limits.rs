//! The open-file limit: every connection is a file descriptor.
//!
//! Linux starts most processes with a soft limit of 1024 descriptors, far below
//! the thousands of clients progjar serves, while the hard limit is usually much
//! higher. A process may raise its own soft limit up to the hard one, so the
//! server and the stress tool do that first and size themselves to the result.

use std::io;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

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
    let (soft_before, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    // Raising may be refused (a container's policy): go on with what there is.
    let raised = soft_before < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok();
    let soft = if raised { hard } else { soft_before };
    Ok(NofileLimits { soft_before, soft, hard })
}
