//! `acoupi devices`: the capture devices this machine has, what each can do, and which
//! one the configuration selects.
//!
//! The probing lives in `audio::device`; this file only gathers and prints.

use std::fmt::Write as _;

use serde::Serialize;

use crate::audio::device::{self, DeviceInfo};
use crate::config::schema::Config;
use crate::system::layout::Layout;

/// `acoupi devices [--json]`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevicesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One listed device and whether the configuration selects it.
#[derive(Debug, Clone, Serialize)]
pub struct ListedDevice {
    /// The device.
    #[serde(flatten)]
    pub info: DeviceInfo,
    /// True for the device `microphone.device_name` resolves to.
    pub configured: bool,
}

/// What `acoupi devices` reports.
#[derive(Debug, Clone, Serialize)]
pub struct DevicesReport {
    /// Every capture device found, plus the configured PCM when it is not a card device.
    pub devices: Vec<ListedDevice>,
    /// `microphone.device_name`, when configured.
    pub configured: Option<String>,
    /// Why the configured name does not resolve, if it does not.
    pub configured_error: Option<String>,
    /// Why the cards could not be listed, if they could not.
    pub list_error: Option<String>,
}

/// Runs the command: reads the configured device name (if a configuration exists),
/// lists and probes the devices, prints them.
pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    let configured = match configured_device() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("note: not marking the configured device: {e:#}");
            None
        }
    };
    let r = report(configured.as_deref());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", render_text(&r));
    }
    Ok(())
}

/// `microphone.device_name` from the configuration file, if one exists. Read through
/// the config module's one reader, so a file every other command accepts (a BOM, CRLF,
/// `implicit_some`) is accepted here too.
pub fn configured_device() -> anyhow::Result<Option<String>> {
    let layout = Layout::detect();
    let cfg: Config = match crate::config::read(&layout.config_file) {
        Ok(c) => c,
        Err(crate::config::ConfigError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let name = cfg.microphone.device_name.trim().to_string();
    Ok((!name.is_empty()).then_some(name))
}

/// Lists the devices and marks the one `configured` resolves to.
pub fn report(configured: Option<&str>) -> DevicesReport {
    let (infos, list_error) = match device::list_devices() {
        Ok(d) => (d, None),
        Err(e) => (Vec::new(), Some(crate::error::chain(&e))),
    };
    let mut devices: Vec<ListedDevice> = infos
        .into_iter()
        .map(|info| ListedDevice {
            info,
            configured: false,
        })
        .collect();
    let mut configured_error = None;
    if let Some(name) = configured {
        match device::resolve_device(name) {
            Ok(pcm) => match devices.iter_mut().find(|d| d.info.pcm == pcm) {
                Some(d) => d.configured = true,
                None => devices.push(ListedDevice {
                    info: device::probe_pcm(&pcm),
                    configured: true,
                }),
            },
            Err(e) => configured_error = Some(crate::error::chain(&e)),
        }
    }
    DevicesReport {
        devices,
        configured: configured.map(str::to_string),
        configured_error,
        list_error,
    }
}

/// The human-readable listing.
pub fn render_text(r: &DevicesReport) -> String {
    let mut out = String::new();
    if let Some(e) = &r.list_error {
        let _ = writeln!(out, "cannot list sound cards: {e}");
    }
    if r.devices.is_empty() {
        let _ = writeln!(
            out,
            "no capture devices found (is the microphone plugged in?)"
        );
    }
    for d in &r.devices {
        let mark = if d.configured { "*" } else { " " };
        let mut title = d.info.pcm.clone();
        if let Some(name) = &d.info.card_name {
            let _ = write!(title, "  {name}");
        }
        if let Some(desc) = &d.info.description {
            let _ = write!(title, " ({desc})");
        }
        if d.configured {
            title.push_str("  [configured]");
        }
        let _ = writeln!(out, "{mark} {title}");
        match (&d.info.capabilities, &d.info.probe_error) {
            (Some(c), _) => {
                let rates: Vec<String> = c.rates.iter().map(u32::to_string).collect();
                let formats: Vec<&str> = c.formats.iter().map(|f| f.name()).collect();
                let _ = writeln!(
                    out,
                    "    rates: {} Hz (range {}..={})\n    channels: {}..={}\n    formats: {}",
                    if rates.is_empty() {
                        "none of the standard".to_string()
                    } else {
                        rates.join(", ")
                    },
                    c.rate_min,
                    c.rate_max,
                    c.channels_min,
                    c.channels_max,
                    if formats.is_empty() {
                        "none supported".to_string()
                    } else {
                        formats.join(", ")
                    },
                );
            }
            (None, Some(e)) => {
                let _ = writeln!(out, "    cannot probe: {e}");
            }
            (None, None) => {}
        }
    }
    if let (Some(name), Some(e)) = (&r.configured, &r.configured_error) {
        let _ = writeln!(out, "configured device {name:?} not usable: {e}");
    }
    out
}
