//! `make portable`'s binaries run on machines with an old glibc (the course's containers).
//!
//! A binary needs the newest glibc symbol version it imports; `objdump -T` lists them.
//! `make test` runs `make portable` first and points PROGJAR_PORTABLE_DIR at the result;
//! run alone, this test looks in `<target>/portable/bin` and skips, saying why, when
//! nothing was built there.

use progjar_testkit as common;

use std::path::PathBuf;
use std::process::Command;

/// The oldest glibc the portable build promises (cargo zigbuild --target …-gnu.2.17).
const GLIBC_FLOOR: (u32, u32) = (2, 17);

fn portable_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PROGJAR_PORTABLE_DIR") {
        return Some(PathBuf::from(dir)); // asked for: missing binaries are a failure
    }
    // CARGO_BIN_EXE_progjar is <target>/<profile>/progjar.
    let target =
        PathBuf::from(env!("CARGO_BIN_EXE_progjar")).parent()?.parent()?.join("portable/bin");
    target.join("progjar").exists().then_some(target)
}

/// Every `GLIBC_x.y[.z]` version named in `objdump -T` output, as (x, y).
fn glibc_versions(objdump: &str) -> Vec<(u32, u32)> {
    objdump
        .split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let version: String =
                rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let mut parts = version.split('.').map(|p| p.parse::<u32>());
            match (parts.next(), parts.next()) {
                (Some(Ok(major)), Some(Ok(minor))) => Some((major, minor)),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn portable_binaries_need_at_most_glibc_2_17_and_run() {
    let Some(dir) = portable_dir() else {
        eprintln!("skipped: no portable build (run `make portable`, or `make test` which does)");
        return;
    };
    for name in ["progjar", "progjar-stress"] {
        let bin = dir.join(name);
        assert!(bin.exists(), "{} is missing: did `make portable` run?", bin.display());
        let out =
            common::run_bounded(Command::new("objdump").arg("-T").arg(&bin), None, common::STEP);
        assert!(
            out.status.success(),
            "objdump -T {} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let versions = glibc_versions(&String::from_utf8_lossy(&out.stdout));
        let Some(&(major, minor)) = versions.iter().max() else {
            panic!("{name} imports no versioned glibc symbol: not a glibc binary?");
        };
        let (floor_major, floor_minor) = GLIBC_FLOOR;
        assert!(
            (major, minor) <= GLIBC_FLOOR,
            "{name} needs GLIBC_{major}.{minor}, newer than GLIBC_{floor_major}.{floor_minor}"
        );
        eprintln!(
            "{name}: newest glibc symbol GLIBC_{major}.{minor} ({} versioned imports)",
            versions.len()
        );

        let out = common::run_bounded(Command::new(&bin).arg("--help"), None, common::STEP);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.starts_with("Usage:"), "{name} --help: {stdout}");
    }
}

#[test]
fn glibc_versions_are_read_from_objdump_lines() {
    let line = "0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.3.4) __memcpy_chk\n\
                0000000000000000      DF *UND*  0000000000000000  GLIBC_2.17  clock_gettime\n";
    assert_eq!(glibc_versions(line), vec![(2, 3), (2, 17)]);
}
