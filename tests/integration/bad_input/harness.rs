//! The [`Case`] harness of the bad-input suite (`tests/integration/bad_input`): a
//! snapshot of everything a refused input must leave alone, and the assertions every
//! case makes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{Install, Outcome};

/// Every regular file below the installation's home, by path, with its bytes. The
/// control socket, pid files and SQLite's `-shm` (rebuilt on open) are not user data.
pub fn snapshot(home: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![home.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() && !is_volatile(&path) {
                files.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    files
}

fn is_volatile(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with("-shm") || name.ends_with(".pid") || name.ends_with(".lock")
}

/// One bad input against an installation: run it, then check the four promises.
pub struct Case<'a> {
    install: &'a Install,
    before: BTreeMap<PathBuf, Vec<u8>>,
}

impl<'a> Case<'a> {
    /// Takes the snapshot the case is compared against.
    pub fn new(install: &'a Install) -> Case<'a> {
        Case {
            install,
            before: snapshot(&install.home),
        }
    }

    /// Runs `acoupi ARGS` and asserts exit code `code`, a first `error:` line equal to
    /// `first_error`, no panic, and an untouched installation. Returns the outcome for
    /// further checks.
    pub fn refused(&self, args: &[&str], code: i32, first_error: &str) -> Outcome {
        let o = self.install.run(args);
        self.assert_refused(&o, args, code, first_error);
        o
    }

    /// The assertions of [`Case::refused`] on an outcome the caller produced itself
    /// (a command with a special environment, stdin or stdout).
    pub fn assert_refused(&self, o: &Outcome, what: &[&str], code: i32, first_error: &str) {
        assert_no_panic(o, what);
        assert_eq!(o.code, Some(code), "acoupi {what:?}: exit code: {o:#?}");
        assert_eq!(
            first_error_line(&o.stderr),
            Some(first_error),
            "acoupi {what:?}: first error line: {o:#?}"
        );
        self.assert_untouched(what);
    }

    /// The configuration, metadata.db and recordings are byte-identical to the snapshot.
    pub fn assert_untouched(&self, what: &[&str]) {
        let after = snapshot(&self.install.home);
        let changed: Vec<_> = self
            .before
            .keys()
            .chain(after.keys())
            .filter(|p| self.before.get(*p) != after.get(*p))
            .collect();
        assert!(
            changed.is_empty(),
            "acoupi {what:?} changed or removed files: {changed:?}"
        );
    }
}

/// No panic message and no death by signal (a release build aborts on panic).
pub fn assert_no_panic(o: &Outcome, what: &[&str]) {
    assert!(
        !o.stderr.contains("panicked at") && o.code.is_some(),
        "acoupi {what:?} panicked or was killed: {o:#?}"
    );
}

/// The first line of stderr that starts with `error:`.
pub fn first_error_line(stderr: &str) -> Option<&str> {
    stderr.lines().find(|l| l.starts_with("error:"))
}
