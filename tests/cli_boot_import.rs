//! `acoupi boot-import`, the first-boot step that takes the configuration a user wrote on
//! the SD card's FAT partition from any computer: a valid file is installed (the previous
//! configuration kept as `.last-good`) and renamed so it is not imported again; an invalid
//! one is left in place with the reason written beside it, and nothing changes.

mod support;

use std::fs;

use support::Install;

#[test]
fn boot_partition_configuration_is_installed_or_rejected_with_the_reason_beside_it() {
    let i = Install::new();
    i.setup(&[]);
    let config = i.config_file();
    let original = fs::read_to_string(&config).unwrap();
    let boot = i.root().join("boot");
    fs::create_dir_all(&boot).unwrap();
    let source = boot.join("acoupi.ron");
    let error_file = boot.join("acoupi-error.txt");
    let args = [
        "boot-import",
        "--source",
        source.to_str().unwrap(),
        "--error-file",
        error_file.to_str().unwrap(),
    ];

    // Nothing on the card: nothing to do.
    i.ok(&args);
    assert!(!error_file.exists());

    // An invalid file: rejected, the reason on the card, the configuration untouched.
    fs::write(&source, "(INVALID: 1)\n").unwrap();
    let out = i.run(&args);
    assert_eq!(out.code, Some(2), "{out:#?}");
    let reason = fs::read_to_string(&error_file).expect("reason written beside the file");
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
    fs::write(&source, &edited).unwrap();
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

/// Issue 11: a file saved on Windows. Notepad's "UTF-8 with BOM" with CRLF line ends is
/// installed (without the mark); its "Unicode" (UTF-16) is rejected with a reason that
/// says to save it as UTF-8, not a parse error at a column.
#[test]
fn windows_saved_boot_files_are_installed_or_told_to_be_saved_as_utf8() {
    let i = Install::new();
    i.setup(&[]);
    let config = i.config_file();
    let original = fs::read_to_string(&config).unwrap();
    let boot = i.root().join("boot");
    fs::create_dir_all(&boot).unwrap();
    let source = boot.join("acoupi.ron");
    let error_file = boot.join("acoupi-error.txt");
    let args = [
        "boot-import",
        "--source",
        source.to_str().unwrap(),
        "--error-file",
        error_file.to_str().unwrap(),
    ];
    let edited = original
        .replace("\"Europe/London\"", "\"Europe/Berlin\"")
        .replace('\n', "\r\n");

    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(edited.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    fs::write(&source, utf16).unwrap();
    let out = i.run(&args);
    assert_eq!(out.code, Some(2), "{out:#?}");
    let reason = fs::read_to_string(&error_file).unwrap();
    assert!(
        reason.contains(&format!(
            "{} is UTF-16 text, not UTF-8: save it as UTF-8",
            source.display()
        )),
        "{reason}"
    );
    assert_eq!(fs::read_to_string(&config).unwrap(), original);

    fs::write(
        &source,
        [b"\xEF\xBB\xBF".as_slice(), edited.as_bytes()].concat(),
    )
    .unwrap();
    i.ok(&args);
    assert_eq!(fs::read_to_string(&config).unwrap(), edited);
    assert!(!error_file.exists());
}
