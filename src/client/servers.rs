//! One exchange per server: in turn, or all at once with `--parallel`.
//!
//! The course's variant "one client sends to two servers" (alpine-1 and
//! alpine-2) is the same exchange twice. Each server gets its own connection,
//! its own freshly opened payload (a file is opened again, a `--size` message
//! made again: nothing is held in memory) and one summary line. The exit status
//! is the worst of theirs, which [`worst`] defines.

use std::io::{self, ErrorKind, Write};
use std::sync::{Arc, Mutex};
use std::thread;

use log::info;

use super::echo_file::Saved;
use super::link::Link;
use super::output::Output;
use super::source::Source;
use super::target::Target;
use super::tls::Tls;
use super::{connect, exchange, interrupt, verdict, Config};
use crate::cli::{Failure, EXIT_FAILURE};
use crate::units::plural;

/// The course's `recv(16)`: the echo's read size when its pieces are logged.
pub const COURSE_CHUNK: usize = 16;

/// Run the exchange with every server; the worst result wins.
pub(super) fn run_all(config: &Config, tls: Option<&Tls>) -> Result<(), Failure> {
    if let [target] = config.targets.as_slice() {
        return run_one(config, tls, target, None);
    }
    let results: Vec<Result<(), Failure>> = if config.parallel {
        thread::scope(|scope| {
            let handles: Vec<_> = (config.targets.iter())
                .map(|t| scope.spawn(move || run_labelled(config, tls, t)))
                .collect();
            // A panic in one server's thread has already printed; count it as a failure.
            let lost = || Err(Failure::new(EXIT_FAILURE, ""));
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| lost())).collect()
        })
    } else {
        let mut results = Vec::new();
        for target in &config.targets {
            results.push(run_labelled(config, tls, target));
            // After Ctrl-C, the next servers are not started.
            if interrupt::interrupted() {
                break;
            }
        }
        results
    };
    // After Ctrl-C the servers not started are not counted.
    let tried = results.len();
    worst(results.into_iter(), tried)
}

/// One server of several: its summary line names it; a failure before the
/// exchange gets a line too, so there is one line per server on stdout.
fn run_labelled(config: &Config, tls: Option<&Tls>, target: &Target) -> Result<(), Failure> {
    let label = target.label();
    let result = run_one(config, tls, target, Some(&label));
    if let Err(f) = &result {
        let _ = writeln!(io::stderr(), "progjar: error: {label}: {}", f.message);
    }
    result
}

/// The worst of the servers' results is the one with the highest exit status:
/// 0 only if every echo was identical; a wrong echo (6) outranks a timeout (5),
/// which outranks a refusal (3); Ctrl-C (130) outranks them all.
fn worst(
    results: impl Iterator<Item = Result<(), Failure>>,
    servers: usize,
) -> Result<(), Failure> {
    let codes: Vec<u8> = results.map(|r| r.err().map_or(0, |f| f.code)).collect();
    let failed = codes.iter().filter(|&&c| c != 0).count();
    match codes.iter().max() {
        Some(&code) if code != 0 => Err(Failure::new(
            code,
            format!(
                "{failed} of {servers} servers failed; the exit status is the highest of theirs"
            ),
        )),
        _ => Ok(()),
    }
}

/// Send the payload to one server (over TLS with `tls`), read and check the echo,
/// print the summary.
fn run_one(
    config: &Config,
    tls: Option<&Tls>,
    target: &Target,
    label: Option<&str>,
) -> Result<(), Failure> {
    let ready = Source::open(&config.payload)
        .and_then(|source| Ok((Output::open(config.output.as_deref(), &source)?, source)));
    let (mut output, source) = match ready {
        Ok(ready) => ready,
        Err(f) => return Err(not_sent(label, f)),
    };
    let socket = connect::connect(&target.host, target.port, config.timeout)
        .map_err(|f| not_sent(label, f))?;
    let tls = match tls {
        Some(tls) => Some(
            tls.handshake(&socket, &target.host, config.timeout).map_err(|f| not_sent(label, f))?,
        ),
        None => None,
    };
    let link = Link { socket, tls: tls.map(|conn| Arc::new(Mutex::new(conn))) };
    let to_stderr = output.is_stdout();
    let chunk = read_size(config.chunk, &source);
    let transfer = exchange::exchange(link, source, &mut output, chunk, config.timeout)?;
    let verdict = verdict::Verdict::of(&transfer);
    let saved = output.finish(verdict.is_success());
    let summary = verdict.summary(&transfer, saved.as_ref());
    let printed = match label {
        Some(label) => print_summary(&format!("{label}: {summary}"), to_stderr),
        None => print_summary(&summary, to_stderr),
    };
    // The exchange's own failure says most; then the file's; then the summary's.
    verdict.into_result(&transfer)?;
    if let Some(failure) = saved.as_ref().and_then(Saved::failure) {
        return Err(failure);
    }
    printed
}

/// With several servers, one that was never sent to still gets its line.
fn not_sent(label: Option<&str>, failure: Failure) -> Failure {
    if let Some(label) = label {
        // The failure is reported (and the exit status set) whether or not this line is seen.
        let _ = print_summary(&format!("{label}: nothing sent (exit {})", failure.code), false);
    }
    failure
}

/// Bytes asked of each read of the echo: `--chunk`, or the course's 16 while
/// pieces are logged (a small payload), or a file's 64 KiB blocks otherwise,
/// so that a big file is not cut into 16-byte system calls.
fn read_size(chunk: Option<usize>, source: &Source) -> usize {
    let (n, why) = match chunk {
        Some(n) => (n, "--chunk"),
        None if source.len().is_some_and(|len| len <= super::PIECE_LOG_LIMIT) => {
            (COURSE_CHUNK, "the course's recv(16)")
        }
        None => {
            let why = match source.len() {
                Some(_) => "64 KiB for a large payload; --chunk 16 for the course's pieces",
                None => "64 KiB, as the size is not known; --chunk 16 for the course's pieces",
            };
            (exchange::BLOCK_SIZE, why)
        }
    };
    info!("reading the echo {} at a time ({why})", plural(n as u64, "byte"));
    n
}

/// Print the summary on stdout, where scripts read it; on stderr when stdout
/// carries the echo itself (`--output -`, `--interactive`). A summary that
/// cannot be written (`>/dev/full`) is a failure: the run did not report. A
/// stream closed by its reader (`| head -0`) is not: the reader has said
/// "enough", and the exit status still tells the verdict.
fn print_summary(line: &str, to_stderr: bool) -> Result<(), Failure> {
    let (written, stream) = if to_stderr {
        (writeln!(io::stderr().lock(), "{line}"), "stderr")
    } else {
        let mut out = io::stdout().lock();
        (writeln!(out, "{line}").and_then(|()| out.flush()), "stdout")
    };
    match written {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => {
            Err(Failure::new(EXIT_FAILURE, format!("cannot write the summary to {stream}: {e}")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_is_the_highest_status() {
        let r = |c: u8| if c == 0 { Ok(()) } else { Err(Failure::new(c, "x")) };
        assert_eq!(worst([0, 0].map(r).into_iter(), 2), Ok(()));
        let f = worst([3, 0, 6, 5].map(r).into_iter(), 4).unwrap_err();
        assert_eq!(f.code, 6);
        assert_eq!(f.message, "3 of 4 servers failed; the exit status is the highest of theirs");
    }
}
