//! The one way an error becomes a line of text: the error and every cause below it,
//! joined by `: `, the shape of the chain `main` prints with anyhow's `{:#}`.
//!
//! For messages built from a library error where no `anyhow` is at hand: a log field, a
//! finding of `acoupi check`, a status line, the boot import's error file. The top-level
//! text alone ("writing …/acoupi.ron") hides what went wrong ("no space left on device").

/// `e` and its causes on one line, each separated by `: `. A cause whose text the error
/// above it already ends with (an error that prints its source) is said once.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::chain;

    /// An error that prints its source in its own text, as `ManagementError::Io` does.
    #[derive(Debug, thiserror::Error)]
    #[error("copying a recording to /r/a.wav: {source}")]
    struct Repeats {
        #[source]
        source: std::io::Error,
    }

    /// An error that leaves its source to the chain.
    #[derive(Debug, thiserror::Error)]
    #[error("managing recordings")]
    struct Outer(#[source] Repeats);

    #[test]
    fn every_cause_is_said_once() {
        let io = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let e = Outer(Repeats { source: io });
        assert_eq!(
            chain(&e),
            "managing recordings: copying a recording to /r/a.wav: No space left on device (os error 28)"
        );
    }
}
