//! Validation of the `paths` section: each path must name something usable on its own
//! (not empty, not the root, a file for the database), and the three storages must not
//! overlap (temporary audio is not a recording; a database inside the temporary
//! directory is gone at the next boot).
//!
//! Pure, like the rest of validation: paths are compared as written, made absolute and
//! normalised lexically (`.` and `..`), never looked up on disk. [`path_errors`] checks
//! what the file says; [`overlap_errors`] checks the paths a layout resolves (defaults
//! filled in, relative paths read from the home), which callers with a layout add.

use std::path::{Component, Path, PathBuf};

use super::schema::Paths;
use super::validate::FieldError;

/// Problems with the configured paths themselves, and overlaps between paths that are
/// both configured and comparable as written.
pub fn path_errors(paths: &Paths) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let dirs = [
        ("paths.tmp_audio", &paths.tmp_audio, "/run/acoupi/tmp"),
        (
            "paths.recordings",
            &paths.recordings,
            "/var/lib/acoupi/storages/recordings",
        ),
    ];
    for (field, value, example) in dirs {
        let Some(p) = value else { continue };
        if is_blank(p) {
            errors.push(empty(field, example));
        } else if normalise(p) == Path::new("/") {
            errors.push(FieldError {
                field: field.into(),
                message: format!(
                    "is the root directory \"/\": give a directory of its own, e.g. {example:?}"
                ),
            });
        }
    }
    if let Some(p) = &paths.db_metadata {
        let example = "/var/lib/acoupi/storages/metadata.db";
        if is_blank(p) {
            errors.push(empty("paths.db_metadata", example));
        } else if names_a_directory(p) {
            errors.push(FieldError {
                field: "paths.db_metadata".into(),
                message: format!(
                    "{:?} names a directory, not a database file: give a file, e.g. {example:?}",
                    p.display().to_string()
                ),
            });
        }
    }
    if !errors.is_empty() {
        return errors;
    }
    // Overlaps of what the file says, when both are written the same way; a layout adds
    // the comparison with the defaults (see `overlap_errors`).
    let (t, r, d) = (&paths.tmp_audio, &paths.recordings, &paths.db_metadata);
    let comparable = |a: &Path, b: &Path| a.is_absolute() == b.is_absolute();
    let pick = |p: &Option<PathBuf>, other: &Option<PathBuf>| match (p, other) {
        (Some(a), Some(b)) if comparable(a, b) => Some(a.clone()),
        _ => None,
    };
    if let (Some(t), Some(r)) = (pick(t, r), pick(r, t)) {
        errors.extend(dir_overlaps(&t, &r));
    }
    if let (Some(d), Some(t)) = (pick(d, t), pick(t, d)) {
        errors.extend(db_overlap(&d, &t, "paths.tmp_audio", true));
    }
    if let (Some(d), Some(r)) = (pick(d, r), pick(r, d)) {
        errors.extend(db_overlap(&d, &r, "paths.recordings", false));
    }
    errors
}

/// Overlaps between the resolved storage paths (absolute, defaults filled in):
/// temporary audio and recordings must be separate directories, neither inside the
/// other, and the database must be neither of them nor inside the temporary one.
pub fn overlap_errors(tmp_audio: &Path, recordings: &Path, db_metadata: &Path) -> Vec<FieldError> {
    let mut errors = dir_overlaps(tmp_audio, recordings);
    errors.extend(db_overlap(db_metadata, tmp_audio, "paths.tmp_audio", true));
    errors.extend(db_overlap(
        db_metadata,
        recordings,
        "paths.recordings",
        false,
    ));
    errors
}

fn dir_overlaps(tmp: &Path, rec: &Path) -> Vec<FieldError> {
    let (t, r) = (normalise(tmp), normalise(rec));
    let (field, message) = if t == r {
        (
            "paths.tmp_audio",
            format!(
                "({}) is the same directory as paths.recordings: temporary files are not recordings; give each its own directory",
                tmp.display()
            ),
        )
    } else if t.starts_with(&r) {
        (
            "paths.tmp_audio",
            format!(
                "({}) is inside paths.recordings ({}): give each its own directory, neither inside the other",
                tmp.display(),
                rec.display()
            ),
        )
    } else if r.starts_with(&t) {
        (
            "paths.recordings",
            format!(
                "({}) is inside paths.tmp_audio ({}), which is temporary: give each its own directory, neither inside the other",
                rec.display(),
                tmp.display()
            ),
        )
    } else {
        return Vec::new();
    };
    vec![FieldError {
        field: field.into(),
        message,
    }]
}

/// The database at `db` against the directory `dir` named `field`; `temporary` when
/// `dir` is emptied at boot (a database inside it would be lost).
fn db_overlap(db: &Path, dir: &Path, field: &str, temporary: bool) -> Option<FieldError> {
    let (d, s) = (normalise(db), normalise(dir));
    let message = if d == s {
        format!(
            "({}) is the directory {field}: give a database file, e.g. \"/var/lib/acoupi/storages/metadata.db\"",
            db.display()
        )
    } else if temporary && d.starts_with(&s) {
        format!(
            "({}) is inside {field} ({}), which is temporary (emptied at boot): put the database elsewhere, e.g. \"/var/lib/acoupi/storages/metadata.db\"",
            db.display(),
            dir.display()
        )
    } else {
        return None;
    };
    Some(FieldError {
        field: "paths.db_metadata".into(),
        message,
    })
}

fn empty(field: &str, example: &str) -> FieldError {
    FieldError {
        field: field.into(),
        message: format!(
            "is empty: remove it to use the default, or give a path, e.g. {example:?}"
        ),
    }
}

fn is_blank(p: &Path) -> bool {
    p.as_os_str().to_string_lossy().trim().is_empty()
}

/// True when `p` can only be a directory: the root, `.`, `..`, or a trailing `/`.
fn names_a_directory(p: &Path) -> bool {
    let text = p.as_os_str().to_string_lossy();
    text.ends_with('/')
        || matches!(
            p.components().next_back(),
            None | Some(Component::RootDir | Component::CurDir | Component::ParentDir)
        )
}

/// `p` without `.` components, with `..` applied to what precedes it; no disk access.
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(tmp: Option<&str>, rec: Option<&str>, db: Option<&str>) -> Vec<String> {
        let paths = Paths {
            tmp_audio: tmp.map(PathBuf::from),
            recordings: rec.map(PathBuf::from),
            db_metadata: db.map(PathBuf::from),
        };
        path_errors(&paths)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn empty_root_and_directory_paths_are_refused_with_an_example() {
        assert_eq!(
            check(None, Some(""), None),
            ["paths.recordings is empty: remove it to use the default, or give a path, e.g. \"/var/lib/acoupi/storages/recordings\""]
        );
        assert_eq!(
            check(Some("/"), None, None),
            ["paths.tmp_audio is the root directory \"/\": give a directory of its own, e.g. \"/run/acoupi/tmp\""]
        );
        for db in ["/", "/var/lib/", ".", "data/.."] {
            let e = check(None, None, Some(db));
            assert!(
                e.len() == 1
                    && e[0].starts_with("paths.db_metadata ")
                    && e[0].contains("names a directory"),
                "{db}: {e:?}"
            );
        }
        assert!(check(Some("tmp"), Some("rec"), Some("metadata.db")).is_empty());
    }

    #[test]
    fn storages_must_not_overlap() {
        let e = check(Some("/data/rec/"), Some("/data/./rec"), None);
        assert_eq!(e, ["paths.tmp_audio (/data/rec/) is the same directory as paths.recordings: temporary files are not recordings; give each its own directory"]);
        let e = check(Some("/data/rec/tmp"), Some("/data/rec"), None);
        assert!(
            e[0].contains("is inside paths.recordings (/data/rec)"),
            "{e:?}"
        );
        let e = check(Some("/data"), Some("/data/rec"), None);
        assert_eq!(e, ["paths.recordings (/data/rec) is inside paths.tmp_audio (/data), which is temporary: give each its own directory, neither inside the other"]);
        let e = check(Some("/run/t"), None, Some("/run/t/m.db"));
        assert!(
            e[0].starts_with("paths.db_metadata (/run/t/m.db) is inside paths.tmp_audio"),
            "{e:?}"
        );
        // Relative and absolute are only compared once a layout resolves them.
        assert!(check(Some("rec"), Some("/data/rec"), None).is_empty());
        let e = overlap_errors(
            Path::new("/h/rec"),
            Path::new("/h/rec"),
            Path::new("/h/m.db"),
        );
        assert_eq!(e.len(), 1);
        let e = overlap_errors(
            Path::new("/h/tmp"),
            Path::new("/h/rec"),
            Path::new("/h/rec"),
        );
        assert!(e[0]
            .to_string()
            .starts_with("paths.db_metadata (/h/rec) is the directory paths.recordings"));
    }
}
