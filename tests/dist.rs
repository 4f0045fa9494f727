//! `make dist`'s release tarballs: what is in them, that they run on old Linux machines of
//! both architectures, and that the aarch64 server serves the native client under qemu-user.
//!
//! `make test` runs `make dist` first and points PROGJAR_DIST_DIR (and PROGJAR_PORTABLE_DIR,
//! `make portable`'s binaries, the same build) at the results; run alone, this test looks in
//! `<target>/dist` and skips, saying why, when nothing was built there. A binary of another
//! architecture runs under `qemu-ARCH-static` with Debian's glibc for it (`make deps` installs
//! both); where they are missing, that part is skipped with the reason.

use progjar_testkit as common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The architectures `make dist` ships, as `uname -m` (and Rust's `ARCH`) names them.
const ARCHS: [&str; 2] = ["x86_64", "aarch64"];
/// What each tarball holds, under its `progjar-VERSION-ARCH-linux/` directory.
const CONTENTS: [&str; 5] =
    ["LICENSE-APACHE", "LICENSE-MIT", "README.md", "progjar", "progjar-stress"];
const BINARIES: [&str; 2] = ["progjar", "progjar-stress"];
/// The oldest glibc the binaries promise (cargo zigbuild --target …-gnu.2.17).
const GLIBC_FLOOR: (u32, u32) = (2, 17);
/// The most a binary may weigh: a student uploads it through JupyterLab's browser page.
const MAX_BYTES: u64 = 8_000_000;
/// The only shared libraries a binary may load: glibc's own and libgcc_s, which every
/// glibc system has. Anything else (OpenSSL, say) would tie it to one distribution.
const SYSTEM_LIBRARIES: [&str; 8] = [
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];

/// `<target>/NAME`, found from the binary cargo built for this test.
fn in_target(name: &str) -> Option<PathBuf> {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_progjar")); // <target>/<profile>/progjar
    Some(exe.parent()?.parent()?.join(name))
}

/// Where `make dist` put the tarballs, or `None` (after saying so) when it did not run.
fn dist_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PROGJAR_DIST_DIR") {
        return Some(PathBuf::from(dir)); // asked for: missing tarballs are a failure
    }
    let dir = in_target("dist")?;
    if dir.join("SHA256SUMS").exists() {
        return Some(dir);
    }
    eprintln!("skipped: no dist build (run `make dist`, or `make test` which does)");
    None
}

/// `progjar-VERSION-ARCH-linux`, the tarball's name without `.tar.gz` and its one directory.
fn release_name(arch: &str) -> String {
    format!("progjar-{}-{arch}-linux", env!("CARGO_PKG_VERSION"))
}

/// Both tarballs unpacked into a directory of one test, removed when dropped.
struct Unpacked(PathBuf);

/// Unpack both tarballs of `dist` with tar, as a student would, for the test named `test`.
fn unpack(dist: &Path, test: &str) -> Unpacked {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dist-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("make the unpacking directory");
    let unpacked = Unpacked(root);
    for arch in ARCHS {
        let tarball = dist.join(format!("{}.tar.gz", release_name(arch)));
        let mut tar = Command::new("tar");
        let out = common::run(tar.arg("-xzf").arg(&tarball).arg("-C").arg(&unpacked.0), None);
        assert!(out.status.success(), "tar -xzf {}: {}", tarball.display(), common::stderr(&out));
    }
    unpacked
}

impl Unpacked {
    /// The tarball of `arch`'s one directory.
    fn dir(&self, arch: &str) -> PathBuf {
        self.0.join(release_name(arch))
    }
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A command that runs `bin`, built for `arch`: directly on a machine of that architecture,
/// else under qemu-user with Debian's glibc for it. `Err` says why it cannot run here.
fn runner(arch: &str, bin: &Path) -> Result<Command, String> {
    if arch == std::env::consts::ARCH {
        return Ok(Command::new(bin));
    }
    let qemu = format!("qemu-{arch}-static");
    if !common::lab::works(&qemu, "--version") {
        return Err(format!("no working `{qemu}` to run {arch} binaries (make deps installs it)"));
    }
    // libc6-arm64-cross puts the loader and glibc there; qemu looks for them under -L.
    let root = format!("/usr/{arch}-linux-gnu");
    if !Path::new(&root).join("lib/libc.so.6").exists() {
        return Err(format!("no {arch} glibc in {root} for qemu (make deps installs it)"));
    }
    let mut cmd = Command::new(qemu);
    cmd.arg("-L").arg(root).arg(bin);
    Ok(cmd)
}

#[test]
fn aarch64_server_under_qemu_echoes_the_native_client_exactly() {
    let Some(dist) = dist_dir() else { return };
    let unpacked = unpack(&dist, "echo");
    let bin = unpacked.dir("aarch64").join("progjar");
    let mut cmd = match runner("aarch64", &bin) {
        Ok(cmd) => cmd,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    cmd.args(["server", "--bind", "127.0.0.1", "--port", "0"]);
    let server = common::start_server_with(&mut cmd);
    let target = format!("127.0.0.1:{}", server.port());
    let data = common::random_bytes(300_000, 19);
    let out = common::client(&[&target, "--file", "-", "--output", "-"], Some(data.clone()));
    assert_eq!(common::code(&out), 0, "stderr: {}", common::stderr(&out));
    assert!(out.stdout == data, "the echo through the aarch64 server differs from what was sent");
    assert!(
        common::stderr(&out).contains("\nsent 300,000 bytes, received 300,000 bytes, identical, ")
    );
    let summary = server.stop(); // SIGTERM through qemu: exit 0, the served summary line
    assert!(summary.ends_with(":served 1 connection, echoed 300,000 bytes"), "{summary}");
}

/// The crypto provider (aws-lc-rs, C code built by zig) works on aarch64 too: the aarch64
/// binary makes the certificates and serves TLS, and the native client checks both.
#[test]
fn aarch64_tls_under_qemu_makes_certificates_and_serves_the_native_client() {
    let Some(dist) = dist_dir() else { return };
    let unpacked = unpack(&dist, "tls");
    let bin = unpacked.dir("aarch64").join("progjar");
    let (mut cert, mut cmd) = match (runner("aarch64", &bin), runner("aarch64", &bin)) {
        (Ok(cert), Ok(cmd)) => (cert, cmd),
        (Err(why), _) | (_, Err(why)) => return eprintln!("skipped: {why}"),
    };
    let certs = unpacked.dir("aarch64").join("certs");
    let out = common::run(cert.arg("cert").arg(&certs), None);
    assert!(out.status.success(), "progjar cert under qemu: {}", common::all_output(&out));
    cmd.args(["server", "--bind", "127.0.0.1", "--port", "0", "--tls-cert"])
        .arg(certs.join("server.crt"))
        .arg("--tls-key")
        .arg(certs.join("server.key"));
    let server = common::start_server_with(&mut cmd);
    let target = format!("127.0.0.1:{}", server.port());
    let ca = certs.join("ca.crt");
    let data = common::random_bytes(100_000, 23);
    let args = [&target, "--tls", "--ca", ca.to_str().unwrap(), "--file", "-", "--output", "-"];
    let out = common::client(&args, Some(data.clone()));
    assert_eq!(common::code(&out), 0, "stderr: {}", common::stderr(&out));
    assert!(out.stdout == data, "the TLS echo through the aarch64 server differs");
    let summary = server.stop();
    assert!(summary.ends_with(":served 1 connection, echoed 100,000 bytes"), "{summary}");
}

#[test]
fn checksums_verify_and_every_binary_says_its_version() {
    let Some(dist) = dist_dir() else { return };
    let out =
        common::run(Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(&dist), None);
    assert!(out.status.success(), "sha256sum -c SHA256SUMS: {}", common::all_output(&out));
    let mut verified: Vec<String> = common::stdout(&out).lines().map(String::from).collect();
    verified.sort();
    let mut want: Vec<String> =
        ARCHS.iter().map(|a| format!("{}.tar.gz: OK", release_name(a))).collect();
    want.sort();
    assert_eq!(verified, want, "every tarball, and nothing else, in SHA256SUMS");
    let unpacked = unpack(&dist, "version");
    for arch in ARCHS {
        let dir = unpacked.dir(arch);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("the unpacked tarball")
            .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, CONTENTS, "{}", dir.display());
        for name in BINARIES {
            let mut cmd = match runner(arch, &dir.join(name)) {
                Ok(cmd) => cmd,
                Err(why) => {
                    eprintln!("skipped {arch} {name} --version: {why}");
                    continue;
                }
            };
            let out = common::run(cmd.arg("--version"), None);
            assert!(out.status.success(), "{arch} {name} --version: {}", common::all_output(&out));
            let want = format!("{name} {}\n", env!("CARGO_PKG_VERSION"));
            assert_eq!(common::stdout(&out), want, "{arch} {name} --version");
        }
    }
}

/// `objdump FLAG bin`'s output; the test fails if objdump does.
fn objdump(flag: &str, bin: &Path) -> String {
    let out = common::run(Command::new("objdump").arg(flag).arg(bin), None);
    assert!(out.status.success(), "objdump {flag} {}: {}", bin.display(), common::stderr(&out));
    common::stdout(&out)
}

#[test]
fn binaries_are_stripped_old_glibc_or_static_and_small() {
    let Some(dist) = dist_dir() else { return };
    let unpacked = unpack(&dist, "elf");
    for arch in ARCHS {
        for name in BINARIES {
            let bin = unpacked.dir(arch).join(name);
            let what = format!("{arch} {name}");
            let size = std::fs::metadata(&bin).expect("an unpacked binary").len();
            assert!(size <= MAX_BYTES, "{what} is {size} bytes, more than {MAX_BYTES}");
            // This machine's objdump names no foreign architecture; readelf reads any ELF header.
            let header =
                common::stdout(&common::run(Command::new("readelf").arg("-h").arg(&bin), None));
            let machine =
                if arch == "x86_64" { "Advanced Micro Devices X86-64" } else { "AArch64" };
            let found = header.lines().find_map(|l| l.trim().strip_prefix("Machine:"));
            assert_eq!(found.map(str::trim), Some(machine), "{what}: {header}");
            assert!(objdump("-t", &bin).contains("no symbols"), "{what} is not stripped");
            assert!(!objdump("-h", &bin).contains(".debug_"), "{what} carries debug info");
            let needed = needed_libraries(&objdump("-p", &bin));
            if needed.is_empty() {
                eprintln!("{what}: static, {size} bytes");
                continue;
            }
            let odd: Vec<&String> =
                needed.iter().filter(|l| !SYSTEM_LIBRARIES.contains(&l.as_str())).collect();
            assert!(odd.is_empty(), "{what} needs {odd:?}, which not every Linux has");
            let versions = glibc_versions(&objdump("-T", &bin));
            let Some(&(major, minor)) = versions.iter().max() else {
                panic!("{what} loads {needed:?} but imports no versioned glibc symbol");
            };
            assert!(
                (major, minor) <= GLIBC_FLOOR,
                "{what} needs GLIBC_{major}.{minor}, newer than GLIBC_{}.{}",
                GLIBC_FLOOR.0,
                GLIBC_FLOOR.1
            );
            eprintln!(
                "{what}: {size} bytes, needs {needed:?}, newest glibc symbol GLIBC_{major}.{minor}"
            );
        }
    }
}

#[test]
fn portable_binaries_are_the_dist_binaries_of_this_machine() {
    let Some(dist) = dist_dir() else { return };
    // Only builds of one `make test` run are compared: left over from two runs, they may differ.
    let Some(portable) = std::env::var_os("PROGJAR_PORTABLE_DIR").map(PathBuf::from) else {
        return eprintln!(
            "skipped: no PROGJAR_PORTABLE_DIR (`make test` sets it after `make dist`)"
        );
    };
    let arch = std::env::consts::ARCH;
    if !ARCHS.contains(&arch) {
        return eprintln!("skipped: make dist ships no {arch} tarball");
    }
    let unpacked = unpack(&dist, "portable");
    for name in BINARIES {
        let from_portable = std::fs::read(portable.join(name)).expect("make portable's binary");
        let from_tarball = std::fs::read(unpacked.dir(arch).join(name)).expect("the tarball's");
        assert!(from_portable == from_tarball, "{name}: make portable and make dist built two");
    }
}

/// The `NEEDED` shared libraries in `objdump -p` output (none for a static binary).
fn needed_libraries(objdump: &str) -> Vec<String> {
    objdump
        .lines()
        .filter_map(|l| l.trim().strip_prefix("NEEDED"))
        .map(|lib| lib.trim().to_string())
        .collect()
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
fn glibc_versions_and_libraries_are_read_from_objdump_lines() {
    let line = "0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.3.4) __memcpy_chk\n\
                0000000000000000      DF *UND*  0000000000000000  GLIBC_2.17  clock_gettime\n";
    assert_eq!(glibc_versions(line), vec![(2, 3), (2, 17)]);
    let dynamic = "Dynamic Section:\n  NEEDED               libgcc_s.so.1\n  NEEDED               libc.so.6\n  INIT                 0x0000000000012000\n";
    assert_eq!(needed_libraries(dynamic), ["libgcc_s.so.1", "libc.so.6"]);
}
