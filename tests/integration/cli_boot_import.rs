//! `acoupi boot-import`, the first-boot step that takes the configuration a user wrote on
//! the SD card's FAT partition from any computer: a valid file is installed (the previous
//! configuration kept as `.last-good`) and renamed so it is not imported again; an invalid
//! one is left in place with the reason written beside it, and nothing changes.

use crate::support;

use std::fs;
use std::path::PathBuf;

use support::Install;

/// A card folder `boot` under an installation: where a user drops `acoupi.ron`, and
/// where the import leaves `acoupi-error.txt` when it refuses the file.
struct Card {
    boot: PathBuf,
    source: PathBuf,
    error_file: PathBuf,
}

impl Card {
    fn new(i: &Install) -> Card {
        let boot = i.root().join("boot");
        fs::create_dir_all(&boot).unwrap();
        Card {
            source: boot.join("acoupi.ron"),
            error_file: boot.join("acoupi-error.txt"),
            boot,
        }
    }

    /// `acoupi boot-import` for this card, as the boot unit runs it.
    fn args(&self) -> [&str; 5] {
        [
            "boot-import",
            "--source",
            self.source.to_str().unwrap(),
            "--error-file",
            self.error_file.to_str().unwrap(),
        ]
    }
}

#[test]
fn boot_partition_configuration_is_installed_or_rejected_with_the_reason_beside_it() {
    let i = Install::new();
    i.setup(&[]);
    let config = i.config_file();
    let original = fs::read_to_string(&config).unwrap();
    let card = Card::new(&i);
    let (boot, source, error_file) = (&card.boot, &card.source, &card.error_file);
    let args = card.args();

    // Nothing on the card: nothing to do.
    i.ok(&args);
    assert!(!error_file.exists());

    // An invalid file: rejected, the reason on the card, the configuration untouched.
    fs::write(source, "(INVALID: 1)\n").unwrap();
    let out = i.run(&args);
    assert_eq!(out.code, Some(2), "{out:#?}");
    let reason = fs::read_to_string(error_file).expect("reason written beside the file");
    assert!(
        reason.contains("unknown field `INVALID` at the top level"),
        "{reason}"
    );
    assert!(reason.contains("Fix the file and boot again"), "{reason}");
    assert!(
        source.exists(),
        "the rejected file stays for the user to fix"
    );
    assert_eq!(fs::read_to_string(&config).unwrap(), original);

    // A valid file: installed as written, the previous one kept, the card tidied.
    let edited = original.replace("\"Europe/London\"", "\"Europe/Berlin\"");
    assert_ne!(edited, original, "the setup config names Europe/London");
    fs::write(source, &edited).unwrap();
    i.ok(&args);
    assert_eq!(fs::read_to_string(&config).unwrap(), edited);
    let last_good = config.with_file_name("acoupi.ron.last-good");
    assert_eq!(fs::read_to_string(last_good).unwrap(), original);
    assert!(
        !source.exists(),
        "imported file renamed, not imported again next boot"
    );
    assert_eq!(
        fs::read_to_string(boot.join("acoupi-imported.ron")).unwrap(),
        edited
    );
    assert!(!error_file.exists(), "a stale reason is removed");
}

/// Issue 11: `acoupi-error.txt` (and `acoupi-imported.ron`) pre-created as symbolic
/// links made the import, running as root, overwrite the links' targets. The names are
/// now replaced (a new file renamed over them); the targets are untouched.
#[test]
fn issue_11_boot_import_never_writes_through_a_symlink_on_the_card() {
    let i = Install::new();
    i.setup(&[]);
    let card = Card::new(&i);
    let (boot, args) = (&card.boot, card.args());
    let victim = i.root().join("victim");
    fs::write(&victim, "precious\n").unwrap();
    let error_file = boot.join("acoupi-error.txt");
    std::os::unix::fs::symlink(&victim, &error_file).unwrap();

    fs::write(boot.join("acoupi.ron"), "(INVALID: 1)\n").unwrap();
    let out = i.run(&args);
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    let meta = fs::symlink_metadata(&error_file).unwrap();
    assert!(meta.is_file(), "the link was replaced by the reason");
    assert!(fs::read_to_string(&error_file)
        .unwrap()
        .contains("unknown field `INVALID`"));

    // The imported copy's name too.
    let imported = boot.join("acoupi-imported.ron");
    std::os::unix::fs::symlink(&victim, &imported).unwrap();
    fs::copy(i.config_file(), boot.join("acoupi.ron")).unwrap();
    i.ok(&args);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(fs::symlink_metadata(&imported).unwrap().is_file());
    assert!(
        fs::symlink_metadata(&error_file).is_err(),
        "stale reason removed"
    );
    let leftovers: Vec<_> = fs::read_dir(boot)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Issue 11: a site configuration with an MQTT password and an HTTP bearer token stayed
/// on the FAT partition, readable by anyone holding the card, as `acoupi-imported.ron`.
/// The copy left there now has both redacted; the installed file keeps them.
#[test]
fn issue_11_secrets_do_not_stay_on_the_card_after_an_import() {
    let i = Install::new();
    i.setup_program(
        "connected",
        &[
            "messaging.mqtt.host=127.0.0.1",
            "messaging.mqtt.username=station",
            "messaging.mqtt.password=hunter2-mqtt",
            "messaging.http.base_url=http://127.0.0.1:9/messages",
            "messaging.http.bearer_token=tok-s3cret-bearer",
        ],
    );
    let site = fs::read_to_string(i.config_file()).unwrap();
    assert!(site.contains("hunter2-mqtt") && site.contains("tok-s3cret-bearer"));
    let card = Card::new(&i);
    let (boot, args) = (&card.boot, card.args());
    fs::write(boot.join("acoupi.ron"), &site).unwrap();
    // A fresh device: the site file is what gets installed.
    fs::remove_file(i.config_file()).unwrap();
    i.ok(&args);

    let installed = fs::read_to_string(i.config_file()).unwrap();
    assert!(installed.contains("hunter2-mqtt"), "{installed}");
    assert!(installed.contains("tok-s3cret-bearer"), "{installed}");
    assert!(!boot.join("acoupi.ron").exists());
    for entry in fs::read_dir(boot).unwrap().flatten() {
        let text = fs::read_to_string(entry.path()).unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("s3cret"),
            "{} holds a secret:\n{text}",
            entry.path().display()
        );
    }
    let copy = fs::read_to_string(boot.join("acoupi-imported.ron")).unwrap();
    let note = format!("<redacted: stored in {}>", i.config_file().display());
    assert_eq!(copy.matches(&note).count(), 2, "{copy}");
    assert!(copy.contains("\"station\""), "the rest is kept: {copy}");
}

/// Issue 11: the error file on the card is read on a laptop, where no `acoupi` runs: it
/// gives every cause, where in the file (line and column, or the dotted field) and what
/// to change.
#[test]
fn issue_11_the_error_file_says_where_and_what_to_change() {
    let i = Install::new();
    i.setup(&[]);
    let card = Card::new(&i);
    let (boot, args) = (&card.boot, card.args());
    let source = boot.join("acoupi.ron");
    let error_file = boot.join("acoupi-error.txt");

    fs::write(
        &source,
        "(\n  microphone: (\n    samplrate: 8000,\n  ),\n)\n",
    )
    .unwrap();
    assert_eq!(i.run(&args).code, Some(2));
    let text = fs::read_to_string(&error_file).unwrap();
    for needle in [
        format!("{}:3:5: unknown field `samplrate` in microphone; did you mean `samplerate`?", source.display()),
        "What to do: open acoupi.ron on this card in a text editor, go to line 3, column 5, and correct what is described above.".into(),
        "Every field is explained in acoupi.ron.example on this card.".into(),
    ] {
        assert!(text.contains(&needle), "no {needle:?} in:\n{text}");
    }

    let valid = fs::read_to_string(i.config_file()).unwrap();
    fs::write(&source, valid.replace("samplerate: 8000", "samplerate: 5")).unwrap();
    assert_eq!(i.run(&args).code, Some(2));
    let text = fs::read_to_string(&error_file).unwrap();
    for needle in [
        "microphone.samplerate must be between",
        "What to do: open acoupi.ron on this card in a text editor and change the field listed above as each line says.",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
}

/// Issue 11: a file saved on Windows. Notepad's "UTF-8 with BOM" with CRLF line ends is
/// installed (without the mark); its "Unicode" (UTF-16) is rejected with a reason that
/// says to save it as UTF-8, not a parse error at a column.
#[test]
fn windows_saved_boot_files_are_installed_or_told_to_be_saved_as_utf8() {
    let i = Install::new();
    i.setup(&[]);
    let config = i.config_file();
    let original = fs::read_to_string(&config).unwrap();
    let card = Card::new(&i);
    let (source, error_file) = (&card.source, &card.error_file);
    let args = card.args();
    let edited = original
        .replace("\"Europe/London\"", "\"Europe/Berlin\"")
        .replace('\n', "\r\n");

    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(edited.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    fs::write(source, utf16).unwrap();
    let out = i.run(&args);
    assert_eq!(out.code, Some(2), "{out:#?}");
    let reason = fs::read_to_string(error_file).unwrap();
    assert!(
        reason.contains(&format!(
            "{} is UTF-16 text, not UTF-8: save it as UTF-8",
            source.display()
        )),
        "{reason}"
    );
    assert_eq!(fs::read_to_string(&config).unwrap(), original);

    fs::write(
        source,
        [b"\xEF\xBB\xBF".as_slice(), edited.as_bytes()].concat(),
    )
    .unwrap();
    i.ok(&args);
    assert_eq!(fs::read_to_string(&config).unwrap(), edited);
    assert!(!error_file.exists());
}
