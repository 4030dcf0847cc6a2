//! Terminal colours, only when stdout is a terminal and `NO_COLOR` is unset.

use std::io::IsTerminal;

fn paint(code: &str, text: &str) -> String {
    let enabled = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    if enabled {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Green text (all is well).
pub fn green(text: &str) -> String {
    paint("32", text)
}

/// Yellow text (attention).
pub fn yellow(text: &str) -> String {
    paint("33", text)
}

/// Red text (a problem).
pub fn red(text: &str) -> String {
    paint("31", text)
}
