//! A pipe between two sockets: `splice(2)` moves a busy direction's bytes
//! from one socket to the other without copying them through the proxy.
//!
//! Reading into the loop's buffer and writing it out copies every byte twice
//! (kernel to user, user to kernel). `splice` moves the socket's pages into a
//! pipe and from the pipe into the other socket instead: the bytes never
//! enter the proxy's memory, and a gigabyte relayed costs about a quarter
//! less CPU (docs/proxy.md has the figures). HAProxy does the same.
//!
//! A pipe is made for a direction only once it is busy (a read filled the
//! whole buffer), so idle and chatty connections never have one, and it is
//! kept until the direction ends: making one per burst costs more than it
//! saves. Each pipe is two descriptors and up to 64 KiB of kernel memory, so
//! there are at most [`MAX_PIPES`] in the process (their descriptors are kept
//! back from `--max-connections`, [`crate::event_loop::Service::SPARE_DESCRIPTORS`])
//! and each is charged to the loop's budget; a direction that cannot have one
//! (the cap, the budget, not Linux) goes on with `read`/`write`.

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a pipe holds at most: Linux's default, 16 pages, never changed.
pub const CAPACITY: usize = 64 * 1024;

/// Pipes open at once in the process, at most: 512 descriptors kept back
/// from the connections. Past them, busy directions read and write.
pub const MAX_PIPES: usize = 256;

/// Pipes open now, in every loop of the process (made and closed only at a
/// burst's start and a direction's end, never per byte).
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// One pipe and the bytes in it.
#[derive(Debug)]
pub struct Pipe {
    ends: imp::Ends,
    /// Bytes in it now.
    pub len: usize,
}

impl Pipe {
    /// A new, empty, nonblocking pipe, unless [`MAX_PIPES`] are open already
    /// or the system has none to give.
    pub fn new() -> io::Result<Pipe> {
        if OPEN.fetch_add(1, Ordering::Relaxed) >= MAX_PIPES {
            OPEN.fetch_sub(1, Ordering::Relaxed);
            return Err(io::Error::other("every pipe is in use"));
        }
        match imp::Ends::new() {
            Ok(ends) => Ok(Pipe { ends, len: 0 }),
            Err(e) => {
                OPEN.fetch_sub(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Move what `from` holds into the pipe, as much as fits: the bytes moved,
    /// 0 at the end of the stream, `WouldBlock` when nothing could move (from
    /// an empty pipe: `from` has nothing).
    pub fn fill(&mut self, from: &impl AsFd) -> io::Result<usize> {
        let n = self.ends.fill(from, CAPACITY - self.len)?;
        self.len += n;
        Ok(n)
    }

    /// Move what the pipe holds into `to`, as much as it takes.
    pub fn drain(&mut self, to: &impl AsFd) -> io::Result<()> {
        while self.len > 0 {
            match self.ends.drain(to, self.len) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.len -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The pipe's two ends and the two splices, where Linux has them.
#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};

    use nix::fcntl::{splice, OFlag, SpliceFFlags};
    use nix::unistd::pipe2;

    /// Never wait on the pipe (the sockets never wait: they are nonblocking).
    const FLAGS: SpliceFFlags = SpliceFFlags::SPLICE_F_MOVE.union(SpliceFFlags::SPLICE_F_NONBLOCK);

    #[derive(Debug)]
    pub struct Ends {
        /// The end bytes leave by, into the destination socket.
        out: OwnedFd,
        /// The end bytes enter by, from the source socket.
        inp: OwnedFd,
    }

    impl Ends {
        pub fn new() -> io::Result<Ends> {
            let (out, inp) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
            Ok(Ends { out, inp })
        }

        pub fn fill(&self, from: &impl AsFd, most: usize) -> io::Result<usize> {
            Ok(splice(from, None, &self.inp, None, most, FLAGS)?)
        }

        pub fn drain(&self, to: &impl AsFd, most: usize) -> io::Result<usize> {
            Ok(splice(&self.out, None, to, None, most, FLAGS)?)
        }
    }
}

/// Elsewhere: no pipe is ever made, and every direction reads and writes.
#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::os::fd::AsFd;

    #[derive(Debug)]
    pub struct Ends;

    impl Ends {
        pub fn new() -> io::Result<Ends> {
            Err(io::ErrorKind::Unsupported.into())
        }

        pub fn fill(&self, _from: &impl AsFd, _most: usize) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }

        pub fn drain(&self, _to: &impl AsFd, _most: usize) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }
    }
}
