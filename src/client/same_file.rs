//! The echo must not be written over the file being sent.
//!
//! `--file a.bin --output a.bin` once opened `a.bin` for writing (truncating it)
//! before reading it: 0 bytes were sent, the empty echo was "identical", and the
//! input was gone. The same happens through another name for the same file: a
//! symbolic link, a hard link, `./a.bin`, or standard input redirected from the
//! output (`--file - <a.bin`), and the other way round (`--output - >>a.bin`).
//! GNU `cat a >>a` refuses this case ("input file is output file"); so do we, before
//! anything is opened for writing and before connecting.
//!
//! Two names are the same file when they have the same device and inode number
//! (what `stat` shows, whatever the path); a name that does not exist yet is
//! compared by its resolved path. Only regular files count: writing to
//! `/dev/null` or a pipe destroys nothing, even when the input is the same device.

use std::fs::{self, File, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::cli::{Failure, EXIT_USAGE};

/// The file the payload is read from, for the check.
pub(super) enum Input<'a> {
    /// A file opened by name (`--file PATH`).
    File { path: &'a Path, file: &'a File },
    /// Standard input (`--file -`, `-i`).
    Stdin,
}

/// Refuse, with exit status 2, an `output` (`-`: standard output) that is the input file.
pub(super) fn refuse_output_over_input(input: Input, output: &Path) -> Result<(), Failure> {
    let (input_meta, input_path, what) = match &input {
        Input::File { path, file } => (file.metadata().ok(), Some(*path), "the file being sent"),
        Input::Stdin => {
            (fd_metadata(io::stdin().as_fd()), None, "the file standard input comes from")
        }
    };
    let Some(input_meta) = input_meta.filter(Metadata::is_file) else { return Ok(()) };
    let to_stdout = output.as_os_str() == "-";
    let same = if to_stdout {
        fd_metadata(io::stdout().as_fd()).is_some_and(|out| same_file(&input_meta, &out))
    } else {
        match fs::metadata(output) {
            Ok(out) => same_file(&input_meta, &out),
            // Not there yet: only its resolved path can name the input.
            Err(_) => input_path.and_then(resolved).is_some_and(|i| resolved(output) == Some(i)),
        }
    };
    if !same {
        return Ok(());
    }
    let name = match to_stdout {
        true => "standard output".to_string(),
        false => format!("--output {}", output.display()),
    };
    Err(Failure::new(
        EXIT_USAGE,
        format!(
            "{name} is {what}, and writing the echo there would destroy it: choose another name"
        ),
    ))
}

/// One regular file under two names: the same device and inode.
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    b.is_file() && (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// What `fstat` says of an open descriptor (standard input or output).
fn fd_metadata(fd: BorrowedFd) -> Option<Metadata> {
    File::from(fd.try_clone_to_owned().ok()?).metadata().ok()
}

/// `path` with every link and `..` resolved; for a name that does not exist yet,
/// its resolved directory and its own name.
fn resolved(path: &Path) -> Option<PathBuf> {
    if let Ok(real) = fs::canonicalize(path) {
        return Some(real);
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Some(fs::canonicalize(dir).ok()?.join(path.file_name()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_name_in_the_same_directory_is_resolved_through_it() {
        let dir = std::env::temp_dir();
        let new = dir.join(format!("progjar-same-file-{}", std::process::id()));
        let through = dir.join(".").join(new.file_name().unwrap());
        assert_eq!(resolved(&through), resolved(&new));
        assert!(resolved(&new).is_some());
        assert_eq!(resolved(Path::new("/no/such/dir/x")), None);
    }
}
