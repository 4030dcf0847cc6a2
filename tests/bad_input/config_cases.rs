//! Bad input for the config area.

use crate::harness::Case;
use crate::support::Install;

/// A typo in a field name is refused with a suggestion; the file stays as it was.
#[test]
fn misspelt_field_is_refused_with_a_suggestion() {
    let install = Install::new();
    install.setup(&[]);
    Case::new(&install).refused(
        &["config", "set", "recording.durration", "5"],
        2,
        "error: unknown field `durration` in recording; did you mean `duration`?",
    );
}
