//! A real browser for the pages the tools write (`progjar-stress --report`, the
//! lab's page, the recorded loop): headless Chromium loads the file as a person
//! would by double-click, takes a screenshot and hands back the DOM it built and
//! every console message.
//!
//! One Chromium run does all three (`--screenshot`, `--dump-dom`, and
//! `--enable-logging=stderr`, where each console message is a `CONSOLE` line).
//! Chromium logs every console message at the same level, so a page here must
//! log none: the pages carry no script, so any message is a fault (a script
//! error, a blocked load). Each run gets its own profile directory, so tests
//! running at once do not share (or wait on) one Chromium profile.
//!
//! When Chromium is missing, [`chromium`] installs Debian's `chromium` as
//! `make deps` does (when root and `apt-get` is there); when that cannot be
//! done it returns `None` after printing why, and the test skips.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::run_bounded;

/// The window the pages are made for: a laptop screen.
pub const WINDOW: (u32, u32) = (1280, 800);

/// How long one page load may take: Chromium starts in about 2 s, far longer on
/// a busy 2-core machine.
const LOAD_LIMIT: Duration = Duration::from_secs(120);

/// How long installing Chromium may take.
const INSTALL_LIMIT: Duration = Duration::from_secs(900);

/// A headless Chromium to load pages with.
#[derive(Debug, Clone)]
pub struct Browser {
    path: PathBuf,
}

/// What the browser made of a page.
#[derive(Debug)]
pub struct Loaded {
    /// The DOM after loading, as HTML.
    pub dom: String,
    /// Every console message, word for word.
    pub console: Vec<String>,
    /// The screenshot (PNG).
    pub screenshot: PathBuf,
}

/// The headless Chromium (`PROGJAR_CHROMIUM`, else `chromium` on the PATH),
/// installed if it is missing and can be; `None` (with the reason on stderr, so
/// the skip shows in the test output) when there is none.
pub fn chromium() -> Option<Browser> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| match std::env::var_os("PROGJAR_CHROMIUM") {
        Some(path) if Path::new(&path).is_file() => Ok(path.into()),
        Some(path) => Err(format!("PROGJAR_CHROMIUM={} is not a file", path.to_string_lossy())),
        None => find().or_else(|_| install()),
    });
    match found {
        Ok(path) => Some(Browser { path: path.clone() }),
        Err(why) => {
            eprintln!("skipped: no headless browser: {why}");
            None
        }
    }
}

/// The first Chromium on the PATH.
fn find() -> Result<PathBuf, String> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find_map(find_in_path)
        .ok_or_else(|| "chromium is not on the PATH".to_string())
}

/// Install Debian's `chromium` as `make deps` does, when this is possible here.
fn install() -> Result<PathBuf, String> {
    let root = nix::unistd::geteuid().is_root();
    if !root || find_in_path("apt-get").is_none() {
        return Err("chromium is not installed and this is not root with apt-get \
                    (`make deps` installs it)"
            .to_string());
    }
    eprintln!("installing chromium for the browser tests (apt-get install chromium)");
    let mut cmd = Command::new("apt-get");
    cmd.args(["-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "chromium"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    let out = run_bounded(&mut cmd, None, INSTALL_LIMIT);
    find().map_err(|_| {
        let err = String::from_utf8_lossy(&out.stderr);
        format!("chromium is not installed and `apt-get install chromium` failed: {}", err.trim())
    })
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

impl Browser {
    /// Load `page` in a [`WINDOW`]-sized window; the screenshot goes to `screenshot`.
    pub fn load(&self, page: &Path, screenshot: &Path) -> Loaded {
        self.load_sized(page, screenshot, WINDOW)
    }

    /// Load `page` in a `width` × `height` window (taller to capture a whole page).
    pub fn load_sized(
        &self,
        page: &Path,
        screenshot: &Path,
        (width, height): (u32, u32),
    ) -> Loaded {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let profile =
            std::env::temp_dir().join(format!("progjar-chromium-{}-{n}", std::process::id()));
        let page = fs::canonicalize(page).expect("the page exists");
        let _ = fs::remove_file(screenshot);
        let mut cmd = Command::new(&self.path);
        cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
            .args(["--no-first-run", "--enable-logging=stderr", "--v=0", "--dump-dom"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--screenshot={}", screenshot.display()))
            .arg(format!("file://{}", page.display()))
            .stdin(Stdio::null());
        let out = run_bounded(&mut cmd, None, LOAD_LIMIT);
        let _ = fs::remove_dir_all(&profile);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "chromium failed on {}: {stderr}", page.display());
        let console = stderr
            .lines()
            .filter_map(|l| l.split_once(":CONSOLE"))
            .map(|(_, msg)| msg.split_once("] ").map_or(msg, |(_, m)| m).trim().to_string())
            .collect();
        Loaded {
            dom: String::from_utf8_lossy(&out.stdout).into_owned(),
            console,
            screenshot: screenshot.to_path_buf(),
        }
    }
}

impl Loaded {
    /// Fail the test unless the page is sound: no console message, a screenshot
    /// of the asked width, and at least one SVG, each with something drawn in it.
    pub fn assert_sound(&self, width: u32) {
        assert!(self.console.is_empty(), "console messages: {:#?}", self.console);
        let png = fs::read(&self.screenshot).expect("chromium wrote the screenshot");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 24, "not a PNG");
        let png_width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
        assert_eq!(png_width, width, "screenshot width");
        let svgs = self.svgs();
        assert!(!svgs.is_empty(), "no <svg> in the page");
        for (i, svg) in svgs.iter().enumerate() {
            let drawn = ["<polyline", "<path", "<line", "<rect", "<circle", "<polygon"];
            assert!(drawn.iter().any(|tag| svg.contains(tag)), "SVG {i} is empty: {svg}");
        }
    }

    /// The page's `<svg>…</svg>` elements, as HTML.
    pub fn svgs(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut rest = self.dom.as_str();
        while let Some(start) = rest.find("<svg") {
            let Some(len) = rest[start..].find("</svg>") else { break };
            out.push(&rest[start..start + len + "</svg>".len()]);
            rest = &rest[start + len..];
        }
        out
    }
}
