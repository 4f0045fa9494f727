//! `progjar record-page IN OUT.html`: a recording read twice, drawn as a page.
//!
//! The file is read twice, in bounded memory however long it is and however
//! many clients it holds: first the [`Census`] adds up every connection (a
//! few numbers each, kept while it is open) and keeps the busiest; then the
//! [`Picture`] gathers what the page draws of the busiest few, summed per
//! pixel column; `page.rs` draws them.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;

use log::warn;

use super::census::Census;
use super::page;
use super::picture::Picture;
use super::read::Reading;
use crate::cli::{Failure, EXIT_FAILURE, EXIT_USAGE};

/// Run `progjar record-page IN OUT`: count, pick the busiest, draw, write.
pub fn run(input: &Path, output: &Path) -> Result<(), Failure> {
    let shown = input.display();
    let usage = |e: String| Failure::new(EXIT_USAGE, format!("{shown}: {e}"));
    let file = File::open(input)
        .map_err(|e| Failure::new(EXIT_USAGE, format!("cannot read {shown}: {e}")))?;
    let mut reader = BufReader::new(file);
    let mut census = Census::default();
    let reading = Reading::read(&mut reader, u64::MAX, &mut census).map_err(usage)?;
    if let Some(cut) = reading.cut {
        warn!("{shown}: {}", cut.words());
    }
    let lanes = census.finish(&reading);
    // The same whole lines again (a file still being written may have grown).
    reader.seek(SeekFrom::Start(0)).map_err(|e| {
        usage(format!("cannot read it a second time ({e}): record-page needs a file, not a pipe"))
    })?;
    let mut picture = Picture::new(&lanes, reading.last_event, page::COLUMNS);
    Reading::read(&mut reader, reading.whole, &mut picture).map_err(usage)?;
    let title = input.file_name().map_or(shown.to_string(), |n| n.to_string_lossy().into_owned());
    let html = page::render(&reading, &lanes, &picture.finish(), &title);
    std::fs::write(output, html)
        .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot write {}: {e}", output.display())))
}
