//! Standard output for the CLI without panics: `std::println!` panics when stdout is a
//! closed pipe (`acoupi deployment status --json | head -c1`) or a full device
//! (`acoupi config get >/dev/full`), and a release build aborts on a panic.
//!
//! `cli/mod.rs` defines `println!` and `print!` before declaring its command modules, so
//! inside `cli/` those names mean the macros below: they write through [`write`], which
//! returns the error as [`StdoutError`] for `?` to pass up. `main` then exits quietly
//! (status 0, as ripgrep does) when the reader went away, and with one error line
//! (status 2) on any other write error. [`note`] is for progress lines of a command that
//! has already changed something: losing the line must not abort it half way.

use std::io::Write;

/// Writing to standard output failed (the cause is the I/O error; `main` looks for a
/// broken pipe in it).
#[derive(Debug, thiserror::Error)]
#[error("writing to standard output")]
pub struct StdoutError(#[source] pub std::io::Error);

/// Writes `args` to stdout and flushes, so an error shows here and not in an exit-time
/// flush that would swallow it.
pub fn write(args: std::fmt::Arguments<'_>) -> Result<(), StdoutError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// Writes a progress line, ignoring a failure: the command goes on (and still reports
/// its own errors on stderr) when nobody reads its output any more.
pub fn note(args: std::fmt::Arguments<'_>) {
    let _ = write(format_args!("{args}\n"));
}

/// True when `e`'s chain holds a failed write to stdout because its reader is gone
/// (`EPIPE`): the output is unwanted, which is not an error.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<StdoutError>()
            .is_some_and(|s| s.0.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
