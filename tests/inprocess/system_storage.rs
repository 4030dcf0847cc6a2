//! Storage folders on a real file system: creation, modes, ownership, writability and
//! free space.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use acoupi::system::layout::{Layout, StoragePaths};
use acoupi::system::storage::{self, StorageError};
use nix::unistd::{Gid, Uid};

fn paths_under(root: &Path) -> StoragePaths {
    StoragePaths {
        tmp_audio: root.join("run/tmp"),
        recordings: root.join("home/storages/recordings"),
        db_metadata: root.join("home/db/metadata.db"),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn ensure_storages_creates_every_folder_with_mode_0750() {
    let dir = tempfile::tempdir().unwrap();
    let p = paths_under(dir.path());
    storage::ensure_storages(&p, None).unwrap();
    for d in [
        p.recordings.as_path(),
        p.recordings.parent().unwrap(),
        p.tmp_audio.as_path(),
        p.db_metadata.parent().unwrap(),
        &dir.path().join("home"),
    ] {
        assert!(d.is_dir(), "{}", d.display());
        assert_eq!(mode(d), 0o750, "{}", d.display());
    }
    assert!(
        !p.db_metadata.exists(),
        "the database file is not this module's"
    );
    // A second run finds everything in place.
    storage::ensure_storages(&p, None).unwrap();
}

#[test]
fn created_folders_go_to_the_owner_and_existing_parents_stay_put() {
    let dir = tempfile::tempdir().unwrap();
    // Root can give folders away; anyone else can only "give" them to themselves, which
    // still runs the chown path.
    let owner = if Uid::effective().is_root() {
        (Uid::from_raw(4242), Gid::from_raw(4343))
    } else {
        (Uid::effective(), Gid::effective())
    };
    let parent_uid = std::fs::metadata(dir.path()).unwrap().uid();
    let p = paths_under(dir.path());
    // A leaf left by an earlier run as another user is handed over too.
    std::fs::create_dir_all(&p.tmp_audio).unwrap();
    storage::ensure_storages(&p, Some(owner)).unwrap();
    for d in [
        p.recordings.as_path(),
        &dir.path().join("home"),
        p.db_metadata.parent().unwrap(),
        p.tmp_audio.as_path(),
    ] {
        let m = std::fs::metadata(d).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (owner.0.as_raw(), owner.1.as_raw()),
            "{}",
            d.display()
        );
    }
    // `run/` existed before (created with tmp/), so only its leaf changed hands.
    assert_eq!(
        std::fs::metadata(dir.path().join("run")).unwrap().uid(),
        Uid::effective().as_raw()
    );
    assert_eq!(std::fs::metadata(dir.path()).unwrap().uid(), parent_uid);
}

#[test]
fn a_file_where_a_folder_belongs_is_reported_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let p = paths_under(dir.path());
    std::fs::create_dir_all(p.recordings.parent().unwrap()).unwrap();
    std::fs::write(&p.recordings, "oops").unwrap();
    let err = storage::ensure_storages(&p, None).unwrap_err();
    assert!(matches!(err, StorageError::NotADirectory { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&p.recordings.display().to_string()), "{text}");
    assert!(text.contains("configure another path"), "{text}");
}

#[test]
fn writable_folder_passes_and_keeps_no_probe_file() {
    let dir = tempfile::tempdir().unwrap();
    storage::check_writable(dir.path()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn unwritable_folder_error_names_folder_user_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone");
    let err = storage::check_writable(&missing).unwrap_err();
    let text = err.to_string();
    let prefix = format!(
        "storage folder {} is not writable by user ",
        missing.display()
    );
    assert!(text.starts_with(&prefix), "{text}");
    assert!(text.contains("chown -R"), "{text}");
}

#[test]
fn free_space_below_the_minimum_is_an_error_with_both_numbers() {
    let dir = tempfile::tempdir().unwrap();
    storage::free_space_ok(dir.path(), 0).unwrap();
    let err = storage::free_space_ok(dir.path(), u64::MAX).unwrap_err();
    let StorageError::LowSpace {
        free_mb, min_mb, ..
    } = &err
    else {
        panic!("expected LowSpace, got {err:?}");
    };
    assert_eq!(*min_mb, u64::MAX);
    let text = err.to_string();
    assert!(text.contains(&format!("has {free_mb} MiB free")), "{text}");
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
}

#[test]
fn user_mode_storages_belong_to_the_current_user() {
    let layout = Layout::user("/tmp/acoupi-home".into());
    assert_eq!(storage::storage_owner(&layout).unwrap(), None);
}

/// A database the CLI created as root (with its WAL files) is given to the service user,
/// so `acoupi run` can write it; without an owner nothing changes.
#[test]
fn database_created_by_the_cli_is_handed_to_the_service_user() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("metadata.db");
    let store = acoupi::store::metadata::MetadataStore::open(&db).unwrap();
    let owner = if Uid::effective().is_root() {
        (Uid::from_raw(4242), Gid::from_raw(4343))
    } else {
        (Uid::effective(), Gid::effective())
    };
    storage::hand_over_db(&db, None).unwrap();
    assert_eq!(
        std::fs::metadata(&db).unwrap().uid(),
        Uid::effective().as_raw()
    );
    storage::hand_over_db(&db, Some(owner)).unwrap();
    let wal = dir.path().join("metadata.db-wal");
    assert!(wal.exists(), "an open WAL database has its -wal file");
    for f in [&db, &wal, &dir.path().join("metadata.db-shm")] {
        let m = std::fs::metadata(f).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (owner.0.as_raw(), owner.1.as_raw()),
            "{}",
            f.display()
        );
    }
    drop(store);
}
