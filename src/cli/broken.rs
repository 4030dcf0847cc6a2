//! When the configuration on disk does not load, a deployment may still be running (the
//! recorder keeps the configuration it loaded). `deployment status` must still show it
//! and `deployment stop` must still end it, and both say how to get a working file back.
//!
//! The backups beside the configuration are `acoupi.ron.bak` (kept by `config set` and
//! `setup`) and `acoupi.ron.last-good` (kept by `config import` and the boot import).
//! The storages of the running deployment are those of the newest backup that loads,
//! else the defaults: the places a deployment's metadata.db can be.

use std::path::PathBuf;

use crate::config::file::with_suffix;
use crate::config::Config;
use crate::system::layout::{Layout, Mode};

/// The backups beside the configuration that exist, `.last-good` first.
pub fn backups(layout: &Layout) -> Vec<PathBuf> {
    [".last-good", ".bak"]
        .iter()
        .map(|s| with_suffix(&layout.config_file, s))
        .filter(|p| p.exists())
        .collect()
}

/// The newest backup that loads (validated), with its configuration.
fn newest_usable_backup(layout: &Layout) -> Option<(PathBuf, Config)> {
    backups(layout)
        .into_iter()
        .filter_map(|p| {
            let config = crate::config::load(&p).ok()?;
            let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            Some((modified, p, config))
        })
        .max_by_key(|(modified, _, _)| *modified)
        .map(|(_, p, c)| (p, c))
}

/// How to get a working configuration back: which backups exist and the command that
/// restores the newest usable one, or what to do when none is usable.
pub fn restore_hint(layout: &Layout) -> String {
    let sudo = if layout.mode == Mode::System {
        "sudo "
    } else {
        ""
    };
    let found = backups(layout);
    let names = found
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ");
    match newest_usable_backup(layout) {
        Some((path, _)) => format!(
            "restore the previous configuration with `{sudo}acoupi config import {}` (backups: {names}), or correct {} by hand",
            path.display(),
            layout.config_file.display()
        ),
        None if found.is_empty() => format!(
            "correct {} by hand, or write a new one with `{sudo}acoupi setup --force`",
            layout.config_file.display()
        ),
        None => format!(
            "no backup loads ({names}): correct {} by hand, or write a new one with `{sudo}acoupi setup --force`",
            layout.config_file.display()
        ),
    }
}

/// The configuration to find a running deployment's storages with when the file on disk
/// does not load: the newest usable backup, else the defaults.
pub fn last_known_config(layout: &Layout) -> Config {
    newest_usable_backup(layout).map_or_else(Config::default, |(_, c)| c)
}
