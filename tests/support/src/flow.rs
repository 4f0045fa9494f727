//! Many nonblocking clients in one mio loop, each sending a checked byte
//! stream: the soak and the graceful-shutdown tests need hundreds of
//! connections mid-transfer at once, which threads of blocking clients cannot
//! hold still at a chosen point.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::process::STEP;
use crate::stream::Stream;

/// One nonblocking client: sends [`Stream`] `seed` up to `limit` with at most
/// `window` bytes unechoed, and checks every echoed byte as it arrives.
pub struct Flow {
    /// The connection, registered with the [`Driver`]'s poll.
    pub stream: mio::net::TcpStream,
    /// Which byte stream it sends.
    pub seed: u64,
    /// Bytes written so far.
    pub sent: u64,
    /// Bytes echoed back and checked so far.
    pub received: u64,
    /// Send up to this many bytes in all.
    pub limit: u64,
    /// At most this many bytes sent but not yet echoed.
    pub window: u64,
    /// Read the echo now (false: leave it to pile up in the server).
    pub reading: bool,
    /// Half-close once `limit` is sent.
    pub close_at_limit: bool,
    /// It has half-closed.
    pub write_closed: bool,
    /// The server's EOF came after every byte.
    pub eof: bool,
    /// A socket error or early EOF: the connection ended.
    pub error: Option<String>,
    /// A byte came back wrong: always a test failure.
    pub mismatch: Option<String>,
    /// Messages sent (the soak's rounds).
    pub rounds: u64,
}

impl Flow {
    /// Connect to `addr` and register as `token` (its index in the flows) with
    /// `poll`; it sends nothing until its `limit` is raised.
    pub fn new(addr: SocketAddr, seed: u64, poll: &Poll, token: usize) -> Flow {
        let s = TcpStream::connect_timeout(&addr, STEP).expect("connect");
        s.set_nonblocking(true).unwrap();
        let mut stream = mio::net::TcpStream::from_std(s);
        poll.registry()
            .register(&mut stream, Token(token), Interest::READABLE | Interest::WRITABLE)
            .expect("register");
        Flow {
            stream,
            seed,
            sent: 0,
            received: 0,
            limit: 0,
            window: u64::MAX,
            reading: true,
            close_at_limit: false,
            write_closed: false,
            eof: false,
            error: None,
            mismatch: None,
            rounds: 0,
        }
    }

    /// Done, one way or another: EOF, an error or a wrong byte.
    pub fn ended(&self) -> bool {
        self.eof || self.error.is_some() || self.mismatch.is_some()
    }

    /// Write and read until the socket would block or there is nothing to
    /// do, for at most a few passes so that one flow whose echoes keep coming
    /// cannot starve the rest. True if it stopped for that reason (it needs
    /// another turn: no new event may come for data already there).
    fn pump(&mut self, buf: &mut [u8], scratch: &mut Vec<u8>) -> bool {
        for _ in 0..4 {
            if self.ended() {
                return false;
            }
            match self.write_some(buf).and_then(|w| Ok(w | self.read_some(buf, scratch)?)) {
                Ok(true) => {}
                Ok(false) => return false,
                Err(e) => {
                    self.error = Some(e);
                    return false;
                }
            }
        }
        !self.ended()
    }

    fn write_some(&mut self, buf: &mut [u8]) -> Result<bool, String> {
        let mut progress = false;
        loop {
            let unechoed = self.sent - self.received;
            let room = (self.limit - self.sent).min(self.window.saturating_sub(unechoed));
            if room == 0 {
                break;
            }
            let n = room.min(buf.len() as u64) as usize;
            Stream::at(self.seed, self.sent).fill(&mut buf[..n]);
            match self.stream.write(&buf[..n]) {
                Ok(0) => return Err("write returned 0".into()),
                Ok(k) => {
                    self.sent += k as u64;
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write after {} bytes: {e}", self.sent)),
            }
        }
        if self.close_at_limit && !self.write_closed && self.sent == self.limit {
            self.stream.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
            self.write_closed = true;
            progress = true;
        }
        Ok(progress)
    }

    fn read_some(&mut self, buf: &mut [u8], scratch: &mut Vec<u8>) -> Result<bool, String> {
        let mut progress = false;
        while self.reading && !self.eof {
            match self.stream.read(buf) {
                Ok(0) if self.write_closed && self.received == self.sent => {
                    self.eof = true;
                    progress = true;
                }
                Ok(0) => return Err(format!("EOF after {} of {} bytes", self.received, self.sent)),
                Ok(k) => {
                    if self.received + k as u64 > self.sent {
                        self.mismatch = Some(format!(
                            "{} bytes echoed, only {} sent",
                            self.received + k as u64,
                            self.sent
                        ));
                        return Ok(false);
                    }
                    if let Err(m) = Stream::at(self.seed, self.received).check(&buf[..k], scratch) {
                        self.mismatch = Some(m);
                        return Ok(false);
                    }
                    self.received += k as u64;
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read after {} bytes: {e}", self.received)),
            }
        }
        Ok(progress)
    }
}

/// Fail the test if any flow saw an error, naming the first ten.
pub fn assert_no_flow_failed(flows: &[Flow], when: &str) {
    let failed: Vec<String> = flows
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some(format!("{i}: {}", f.error.as_ref()?)))
        .collect();
    assert!(
        failed.is_empty(),
        "{} connections failed {when}: {:#?}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );
}

/// Runs the flows' event loop, round-robin.
pub struct Driver {
    /// Where [`Flow::new`] registers each flow.
    pub poll: Poll,
    events: Events,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    /// Flows that need a turn without waiting for an event.
    again: Vec<usize>,
}

impl Default for Driver {
    fn default() -> Driver {
        Driver::new()
    }
}

impl Driver {
    /// A poll and the buffers all flows share.
    pub fn new() -> Driver {
        Driver {
            poll: Poll::new().expect("poll"),
            events: Events::with_capacity(1024),
            buf: vec![0; 64 * 1024],
            scratch: Vec::new(),
            again: Vec::new(),
        }
    }

    /// Give flow `i` a turn at the next run (after changing its limit or flags).
    pub fn kick(&mut self, i: usize) {
        self.again.push(i);
    }

    /// One turn of flow `i`; true if it wants another. After its pump,
    /// `then(i, flow)` may raise its limit (returning true).
    fn turn(
        &mut self,
        i: usize,
        flow: &mut Flow,
        then: &mut impl FnMut(usize, &mut Flow) -> bool,
    ) -> bool {
        let more = flow.pump(&mut self.buf, &mut self.scratch);
        !flow.ended() && (then(i, flow) || more)
    }

    /// Serve events until `done(flows)` holds; fail after `limit`.
    pub fn run(
        &mut self,
        flows: &mut [Flow],
        limit: Duration,
        mut then: impl FnMut(usize, &mut Flow) -> bool,
        mut done: impl FnMut(&[Flow]) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some((i, f)) = flows.iter().enumerate().find(|(_, f)| f.mismatch.is_some()) {
                panic!("flow {i}: {}", f.mismatch.as_ref().unwrap());
            }
            if done(flows) {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                let stuck = flows.iter().filter(|f| !f.ended()).count();
                panic!("flows not done in {limit:?}: {stuck} still open");
            }
            let wait = if self.again.is_empty() {
                (deadline - now).min(Duration::from_millis(100))
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut self.events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("poll: {e}"),
            }
            let mut turns: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
            turns.append(&mut self.again);
            turns.sort_unstable();
            turns.dedup();
            for i in turns {
                if self.turn(i, &mut flows[i], &mut then) {
                    self.again.push(i);
                }
            }
        }
    }
}

/// 100 flows of `half` bytes each way; the first ten do not read (so the server holds pending echoes).
pub fn hundred_flows(driver: &Driver, addr: SocketAddr, half: u64) -> Vec<Flow> {
    (0..100)
        .map(|i| {
            let mut f = Flow::new(addr, 800 + i as u64, &driver.poll, i);
            f.limit = half;
            if i < 10 {
                f.reading = false;
            } else {
                f.window = 64 * 1024;
            }
            f
        })
        .collect()
}

/// The soak's message sizes: mostly up to 4 KiB, every 16th up to 128 KiB.
pub fn message_len(seed: u64, round: u64) -> u64 {
    let h = Stream::at(seed ^ 0xABCD, round * 8).next_u64();
    if round % 16 == 15 {
        16 * 1024 + h % (112 * 1024)
    } else {
        1 + h % 4096
    }
}
