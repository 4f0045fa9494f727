//! The docs say only what works: every command they show parses, every link lands.
//!
//! README.md and docs/*.md are read as a student would copy from them. In fenced
//! ```` ```sh ```` blocks, and in inline code that starts with `progjar`, each
//! `progjar …` / `progjar-stress …` command is run with `--help --help` appended:
//! argh parses every option and value first (a wrong option, a bad number, a bad
//! size fails) and then prints the usage instead of doing anything, so a command
//! that names another machine (`progjar client 172.16.16.101`) never connects
//! anywhere. Two `--help`s because a dangling option would swallow the first as its
//! value. `make X` must name a Makefile target, `tools/…` an executable script,
//! `cargo test --test X` a file `tests/X.rs`; other programs (docker, wireshark) are
//! not checked. A prompt `mesinN$` only says on which machine a command runs.
//! Usage synopses with placeholders go in ```` ```text ```` blocks, which are not run.
//! The Markdown is read by a CommonMark parser (pulldown-cmark) and each line of
//! shell split into words by the shell's quoting rules (shell-words).

use progjar_testkit as common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, as (path relative to the root, text).
fn documents() -> Vec<(PathBuf, String)> {
    let mut paths = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("readable docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| p.strip_prefix(root()).expect("under the root").to_path_buf())
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| (p.clone(), fs::read_to_string(root().join(&p)).expect("readable")))
        .collect()
}

/// What the tests read of one Markdown text.
#[derive(Debug, Default)]
struct Markdown {
    /// The lines of ```` ```sh ```` blocks, with their line numbers.
    sh: Vec<(usize, String)>,
    /// Inline code spans, with their line numbers.
    code: Vec<(usize, String)>,
    /// The anchors of its headings.
    anchors: Vec<String>,
    /// The targets of its links and pictures.
    links: Vec<String>,
}

fn markdown(text: &str) -> Markdown {
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    let mut md = Markdown::default();
    let mut in_sh = false;
    let mut heading: Option<String> = None;
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => in_sh = &*info == "sh",
            Event::End(TagEnd::CodeBlock) => in_sh = false,
            Event::Text(t) if in_sh => {
                let first = line_of(range.start);
                md.sh.extend(t.lines().enumerate().map(|(i, l)| (first + i, l.to_string())));
            }
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) if heading.is_some() => {
                heading.get_or_insert_default().push_str(&t)
            }
            Event::End(TagEnd::Heading(_)) => md.anchors.push(anchor(&heading.take().unwrap())),
            Event::Code(span) => md.code.push((line_of(range.start), span.to_string())),
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                md.links.push(dest_url.to_string())
            }
            _ => {}
        }
    }
    md
}

/// Inline code spans that start with a progjar binary.
fn inline_commands(md: &Markdown) -> Vec<(usize, String)> {
    let command = |span: &str| {
        let program = span.split_whitespace().find(|w| !is_assignment(w));
        matches!(program, Some("progjar" | "progjar-stress"))
            && span.contains(' ')
            && !has_placeholder(span)
    };
    md.code.iter().filter(|(_, span)| command(span)).cloned().collect()
}

/// `PORT`, `ARGS`, `[--bind ADDR]`, `…`: a synopsis, not a command to run.
fn has_placeholder(span: &str) -> bool {
    span.contains('[')
        || span.contains('…')
        || span.contains("...")
        || span.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').any(|w| {
            w.len() >= 2
                && w.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                && !w.contains("KiB")
        })
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

/// Is `word` a redirection (`2>`, `>log`, `2>&1`, `<in`)? Returns whether
/// its file is the next word (`2> trace.log`).
fn redirection(word: &str) -> Option<bool> {
    let op = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = op.strip_prefix(['>', '<'])?.trim_start_matches(['>', '&']);
    Some(rest.is_empty())
}

/// A command's words without its redirections.
fn without_redirections(words: &[String]) -> Vec<String> {
    let mut kept = Vec::new();
    let mut skip_next = false;
    for w in words {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        match redirection(w) {
            Some(file_follows) => skip_next = file_follows,
            None => kept.push(w.clone()),
        }
    }
    kept
}

/// The simple commands of one line: split at operators (`|`, `||`, `&&`, `;`,
/// `&` as words of their own), prompt, `VAR=value` and redirections dropped.
fn commands(line: &str) -> Result<Vec<Vec<String>>, String> {
    let line = line.trim_start();
    let line = match line.split_once("$ ") {
        Some((prompt, rest)) if prompt.starts_with("mesin") && !prompt.contains(' ') => rest,
        _ => line,
    };
    let words = shell_words::split(line).map_err(|e| format!("not shell words: {e}"))?;
    // `sleep 1; kill %1`: a `;` ends the word before it, as it ends the command.
    let words: Vec<String> = words
        .into_iter()
        .flat_map(|w| match w.strip_suffix(';') {
            Some(word) if !word.is_empty() => vec![word.to_string(), ";".to_string()],
            _ => vec![w],
        })
        .collect();
    Ok(words
        .split(|w| matches!(w.as_str(), "|" | "||" | "&&" | ";" | "&"))
        .map(|c| c.iter().skip_while(|w| is_assignment(w)).cloned().collect::<Vec<_>>())
        .map(|c| without_redirections(&c))
        .filter(|c| !c.is_empty())
        .collect())
}

fn make_targets() -> Vec<String> {
    let text = fs::read_to_string(root().join("Makefile")).expect("Makefile");
    text.lines()
        .filter(|l| !l.starts_with(['\t', '#', '.', ' ']))
        .filter_map(|l| l.split_once(':'))
        .filter(|(_, rest)| !rest.starts_with('='))
        .flat_map(|(names, _)| names.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// The binary to run for a documented program, or `None` when it is not built here.
fn binary(program: &str) -> Option<PathBuf> {
    let progjar = PathBuf::from(env!("CARGO_BIN_EXE_progjar"));
    match program {
        "progjar" => Some(progjar),
        // Another package's binary: `cargo test --workspace` (make test) builds it beside ours.
        "progjar-stress" => Some(progjar.with_file_name("progjar-stress")).filter(|p| p.exists()),
        _ => None,
    }
}

/// Why one documented command does not work, or `None` when it does.
fn check(command: &[String], targets: &[String]) -> Option<String> {
    let (program, args) = command.split_first()?;
    match program.as_str() {
        "progjar" | "progjar-stress" => {
            let Some(bin) = binary(program) else {
                eprintln!("note: {program} is not built; `cargo test --workspace` checks it");
                return None;
            };
            // `--version` alone runs as it is: it only prints.
            let version = args == ["--version"];
            let mut cmd = Command::new(bin);
            cmd.args(args);
            if !version {
                cmd.args(["--help", "--help"]);
            }
            let out = common::run_bounded(&mut cmd, None, common::STEP);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let parsed = out.status.success() && (version || stdout.starts_with("Usage:"));
            (!parsed)
                .then(|| format!("does not parse: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
        "make" => args
            .iter()
            .filter(|a| !is_assignment(a) && !a.starts_with('-'))
            .find(|a| !targets.contains(a))
            .map(|a| format!("no make target {a:?}")),
        p if p.starts_with("tools/") => {
            let executable = fs::metadata(root().join(p)).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            });
            (!executable).then(|| format!("{p} is not an executable script"))
        }
        "cargo" => {
            let test = args.iter().position(|a| a == "--test").and_then(|i| args.get(i + 1))?;
            let exists = root().join(format!("tests/{test}.rs")).exists();
            (!exists).then(|| format!("no tests/{test}.rs"))
        }
        _ => None,
    }
}

#[test]
fn every_command_in_the_docs_works_as_written() {
    let targets = make_targets();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (path, text) in documents() {
        let md = markdown(&text);
        for (line_no, line) in md.sh.iter().cloned().chain(inline_commands(&md)) {
            let commands = commands(&line).unwrap_or_else(|why| vec![vec![why]]);
            for command in commands {
                checked += 1;
                if let Some(why) = check(&command, &targets) {
                    failures.push(format!(
                        "{}:{line_no}: `{}`: {why}",
                        path.display(),
                        command.join(" ")
                    ));
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} commands found: is the extraction broken?");
    assert!(failures.is_empty(), "commands in the docs that do not work:\n{}", failures.join("\n"));
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_relative_link_in_the_docs_lands_on_a_file_and_heading() {
    let mut failures = Vec::new();
    for (path, text) in documents() {
        let dir = path.parent().unwrap_or(Path::new(""));
        for link in markdown(&text).links {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() { path.clone() } else { dir.join(file) };
            // A directory or a picture has no headings, but is a target all the same.
            let Ok(target_text) = fs::read_to_string(root().join(&target)) else {
                if !root().join(&target).exists() {
                    failures.push(format!(
                        "{}: ({link}): no file {}",
                        path.display(),
                        target.display()
                    ));
                }
                continue;
            };
            if !fragment.is_empty() && !markdown(&target_text).anchors.iter().any(|a| a == fragment)
            {
                failures.push(format!(
                    "{}: ({link}): no heading #{fragment} in {}",
                    path.display(),
                    target.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "broken links:\n{}", failures.join("\n"));
}

#[test]
fn the_readme_fits_on_a_page_and_links_every_doc() {
    let docs = documents();
    let readme = &docs[0].1;
    let words = readme.split_whitespace().count();
    assert!(words <= 1500, "README.md has {words} words; the depth belongs in docs/");
    for (path, _) in &docs[1..] {
        let link = format!("]({})", path.display());
        assert!(readme.contains(&link), "README.md does not link {}", path.display());
    }
}

#[test]
fn the_extraction_reads_shell_as_a_student_types_it() {
    let line = r#"mesin2$ head -c 50M /dev/urandom | RUST_LOG=debug progjar client 1.2.3.4 --message "a b" & x # c"#;
    let expected: Vec<Vec<&str>> = vec![
        vec!["head", "-c", "50M", "/dev/urandom"],
        vec!["progjar", "client", "1.2.3.4", "--message", "a b"],
        vec!["x"],
    ];
    assert_eq!(commands(line).expect("shell words"), expected);
    let line = "progjar server --port 1 2> trace.log & progjar client 2>&1 >out | x; y";
    let expected = vec![
        vec!["progjar", "server", "--port", "1"],
        vec!["progjar", "client"],
        vec!["x"],
        vec!["y"],
    ];
    assert_eq!(commands(line).expect("shell words"), expected);
    let md = markdown(
        "# A `b` c\n\n```sh\nprogjar x\n```\n\n[l](t.md) `progjar server\n--port 1` `[x](y)`\n",
    );
    assert_eq!(md.sh, [(4, "progjar x".to_string())]);
    assert_eq!(
        (&md.anchors[..], &md.links[..]),
        (&["a-b-c".to_string()][..], &["t.md".to_string()][..])
    );
    assert_eq!(inline_commands(&md), [(7, "progjar server --port 1".to_string())]);
    assert!(has_placeholder("progjar-stress 127.0.0.1:PORT ARGS --json"));
    assert!(!has_placeholder("progjar-stress -c 2 -s 1MiB --pipeline 8"));
    assert_eq!(
        anchor("The course's four tasks, with progjar"),
        "the-courses-four-tasks-with-progjar"
    );
}
