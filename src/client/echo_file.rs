//! `--output FILE`: the echo goes to a temporary file beside FILE, which takes
//! FILE's name only once the echo is complete and identical.
//!
//! Written straight into FILE, an interrupted or wrong echo left a partial FILE
//! under the final name, and a previous good FILE was already gone. So each piece
//! goes to a hidden temporary file in FILE's own directory (`.FILE.PID.progjar-tmp`):
//! the same file system, so `rename` replaces FILE in one step (a reader sees the
//! old file or the new one, never half of one). On a difference, a timeout,
//! Ctrl-C or any failure, what came back is kept as `FILE.partial` and FILE is
//! left as it was. Replacing an existing FILE stays the default, as with
//! `curl -o` and `ncat -o`; its permission bits are kept.
//!
//! No temporary file is ever left behind: the finish renames it, dropping it
//! (an early error) removes it, and a process exit that skips both (a second
//! Ctrl-C) goes through [`keep_partials`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::cli::{Failure, EXIT_FILE};

/// The temporary files alive in this process, with the partial name each would get.
static TEMPORARY: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());

/// A poisoned lock only means another thread panicked holding it; the list is still valid.
fn temporary() -> MutexGuard<'static, Vec<(PathBuf, PathBuf)>> {
    TEMPORARY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The echo being written, under a temporary name until [`EchoFile::finish`].
pub(super) struct EchoFile {
    /// FILE as the user wrote it, for messages.
    name: String,
    /// Where the echo ends up: FILE, or the file a symbolic link FILE points to.
    target: PathBuf,
    /// `target` + `.partial`.
    partial: PathBuf,
    temp: PathBuf,
    file: File,
    written: u64,
}

/// Where the echo ended up, for the summary.
#[derive(Debug)]
pub(super) enum Saved {
    /// Complete and identical, under the final name.
    Complete { name: String },
    /// Not complete or not identical: what came is under the partial name.
    Partial { name: String, partial: String },
    /// Nothing came back: nothing was written, FILE is as it was.
    Nothing { name: String },
    /// The echo could not be put under its name (the rename failed).
    Failed { name: String, error: io::Error, partial: Option<String> },
    /// Not complete or not identical, written in place (`/dev/null`, a pipe).
    Written { name: String },
}

impl EchoFile {
    /// Make the temporary file beside `path` (or beside the file it links to).
    pub(super) fn create(path: &Path) -> io::Result<EchoFile> {
        let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        // Replace the file a link points to, not the link, as writing through it did.
        let target = if is_link { link_target(path)? } else { path.to_path_buf() };
        let existing = fs::metadata(&target).ok();
        if existing.as_ref().is_some_and(|m| m.is_dir()) {
            return Err(io::Error::new(ErrorKind::IsADirectory, "it is a directory"));
        }
        if existing.is_some() {
            // A file we may not write stays so: renaming over it would get round that.
            OpenOptions::new().write(true).open(&target)?;
        }
        let (temp, file) = create_beside(&target)?;
        let mut partial = target.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        temporary().push((temp.clone(), partial.clone()));
        let echo =
            EchoFile { name: path.display().to_string(), target, partial, temp, file, written: 0 };
        if let Some(meta) = existing {
            echo.file.set_permissions(meta.permissions())?;
        }
        Ok(echo)
    }

    /// Write one piece of the echo.
    pub(super) fn write(&mut self, piece: &[u8]) -> io::Result<()> {
        self.file.write_all(piece)?;
        self.written += piece.len() as u64;
        Ok(())
    }

    /// FILE as the user wrote it.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Give the echo its final name if `complete` (and identical), else keep
    /// what came as FILE.partial (nothing at all if nothing came).
    pub(super) fn finish(self, complete: bool) -> Saved {
        let name = self.name.clone();
        // The lock is held until the rename is done, so that a second Ctrl-C
        // (`keep_partials`) cannot race it; it is released before `self` drops.
        let mut temporary = temporary();
        temporary.retain(|(temp, _)| *temp != self.temp);
        let saved = if complete {
            match fs::rename(&self.temp, &self.target) {
                Ok(()) => Saved::Complete { name },
                Err(error) => {
                    let partial = keep_partial(&self.temp, &self.partial).ok();
                    Saved::Failed { name, error, partial }
                }
            }
        } else if self.written == 0 {
            let _ = fs::remove_file(&self.temp);
            Saved::Nothing { name }
        } else {
            match keep_partial(&self.temp, &self.partial) {
                Ok(partial) => Saved::Partial { name, partial },
                Err(error) => Saved::Failed { name, error, partial: None },
            }
        };
        drop(temporary);
        saved
    }
}

impl Drop for EchoFile {
    /// Not finished (an error before or during the exchange): nothing is kept.
    fn drop(&mut self) {
        let mut temporary = temporary();
        if let Some(i) = temporary.iter().position(|(temp, _)| *temp == self.temp) {
            temporary.remove(i);
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// The file the symbolic link `link` points to, which need not exist yet.
fn link_target(link: &Path) -> io::Result<PathBuf> {
    if let Ok(real) = fs::canonicalize(link) {
        return Ok(real);
    }
    // A link to a file not there yet: its target, read relative to the link's directory.
    let dir = link.parent().unwrap_or(Path::new("."));
    Ok(dir.join(fs::read_link(link)?))
}

/// Rename `temp` to `partial`; the name, for the summary. On failure, `temp` is removed.
fn keep_partial(temp: &Path, partial: &Path) -> io::Result<String> {
    match fs::rename(temp, partial) {
        Ok(()) => Ok(partial.display().to_string()),
        Err(e) => {
            let _ = fs::remove_file(temp);
            Err(e)
        }
    }
}

/// For a process exit that skips [`EchoFile::finish`]: keep each temporary
/// file that holds something as its partial name, remove the empty ones.
/// Returns the partial names kept. The lock stays held: the process is exiting.
pub(super) fn keep_partials() -> Vec<String> {
    let temporary = temporary();
    let mut kept = Vec::new();
    for (temp, partial) in temporary.iter() {
        if fs::metadata(temp).is_ok_and(|m| m.len() > 0) {
            if let Ok(name) = keep_partial(temp, partial) {
                kept.push(name);
            }
        } else {
            let _ = fs::remove_file(temp);
        }
    }
    std::mem::forget(temporary);
    kept
}

/// A new file `.NAME.PID.progjar-tmp` (or `...-tmp2`, ...) in `target`'s directory.
fn create_beside(target: &Path) -> io::Result<(PathBuf, File)> {
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = target.file_name().ok_or_else(|| io::Error::from(ErrorKind::InvalidInput))?;
    let pid = std::process::id();
    // Bounded: a few names; one taken means a leftover of an earlier process with our pid.
    for n in 1..=8 {
        let suffix = if n == 1 { String::new() } else { n.to_string() };
        let mut temp = std::ffi::OsString::from(".");
        temp.push(name);
        temp.push(format!(".{pid}.progjar-tmp{suffix}"));
        let temp = dir.join(temp);
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from(ErrorKind::AlreadyExists))
}

impl Saved {
    /// The end of the summary line: where the echo is, in one clause.
    pub(super) fn words(&self) -> String {
        match self {
            Saved::Complete { name } => format!("; the echo is in {name}"),
            Saved::Partial { name, partial } => {
                format!("; {name} was not written: what came back is in {partial}")
            }
            Saved::Nothing { name } => format!("; {name} was not written: nothing came back"),
            Saved::Failed { name, error, partial: Some(partial) } => {
                format!("; {name} was not written ({error}): the echo is in {partial}")
            }
            Saved::Failed { name, error, partial: None } => {
                format!("; {name} was not written ({error})")
            }
            Saved::Written { name } => format!("; what came back was written to {name}"),
        }
    }

    /// A complete echo that could not be put under its name is a failure of its own.
    pub(super) fn failure(&self) -> Option<Failure> {
        match self {
            Saved::Failed { name, error, .. } => {
                Some(Failure::new(EXIT_FILE, format!("cannot write {name}: {error}")))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("progjar-echo-file-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn complete_replaces_the_file_and_leaves_nothing_else() {
        let dir = scratch("complete");
        let out = dir.join("out.bin");
        fs::write(&out, b"old").unwrap();
        let mut echo = EchoFile::create(&out).unwrap();
        echo.write(b"new").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"old", "the old file stays until the end");
        assert!(matches!(echo.finish(true), Saved::Complete { .. }));
        assert_eq!(fs::read(&out).unwrap(), b"new");
        assert_eq!(names(&dir), ["out.bin"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn incomplete_is_kept_as_partial_and_nothing_is_not_kept() {
        let dir = scratch("partial");
        let out = dir.join("out.bin");
        let mut echo = EchoFile::create(&out).unwrap();
        echo.write(b"half").unwrap();
        let (o, p) = (out.display(), dir.join("out.bin.partial").display().to_string());
        let saved = echo.finish(false);
        assert_eq!(saved.words(), format!("; {o} was not written: what came back is in {p}"));
        assert_eq!(fs::read(dir.join("out.bin.partial")).unwrap(), b"half");
        let echo = EchoFile::create(&out).unwrap();
        assert!(matches!(echo.finish(false), Saved::Nothing { .. }));
        drop(EchoFile::create(&out).unwrap());
        assert_eq!(names(&dir), ["out.bin.partial"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
