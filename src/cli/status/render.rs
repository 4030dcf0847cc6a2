//! The human form of `deployment status`: the four sections of the deployment guide as
//! aligned `name : value` lines, from the [`Status`] `collect_status` gathered (the JSON
//! form is that value serialised; this is the only other rendering).

use super::{integrity_failure, DeploymentState, ProgramHealth, Status};
use crate::cli::style;
use crate::health::WorkerHealth;
use crate::system::systemd::UnitState;

/// The human form: the four sections of the deployment guide.
pub fn render_status(s: &Status) -> String {
    let mut out = String::from("acoupi status\n");
    let field = |out: &mut String, name: &str, value: &str| {
        out.push_str(&format!("  {name:>14} : {value}\n"));
    };
    let services_ok =
        s.services.acoupi == UnitState::Active && s.services.beat == UnitState::Active;
    let head = |ok: bool, title: &str| {
        if ok {
            style::green(&format!("● {title}"))
        } else {
            style::yellow(&format!("● {title}"))
        }
    };
    out.push_str(&head(services_ok, "System Services"));
    out.push('\n');
    let sv = &s.services;
    field(
        &mut out,
        "acoupi",
        &service_line(sv.acoupi, sv.acoupi_restarts, &sv.acoupi_failure, "acoupi"),
    );
    field(
        &mut out,
        "beat",
        &service_line(sv.beat, sv.beat_restarts, &sv.beat_failure, "acoupi-beat"),
    );
    let workers_ok = s.workers.recording == Some(WorkerHealth::Ok)
        && s.workers.default == Some(WorkerHealth::Ok);
    out.push_str(&head(workers_ok, "Workers"));
    out.push('\n');
    field(&mut out, "status", s.workers.status.as_str());
    if let (Some(r), Some(d)) = (s.workers.recording, s.workers.default) {
        field(&mut out, "recording", r.as_str());
        field(&mut out, "default", d.as_str());
    }
    if let Some(detail) = &s.workers.detail {
        field(&mut out, "doing", detail);
    }
    out.push_str(&head(s.program.status == ProgramHealth::Ok, "Program"));
    out.push('\n');
    field(&mut out, "status", s.program.status.as_str());
    if let Some(p) = &s.program.problem {
        field(&mut out, "problem", p);
        field(
            &mut out,
            "fix",
            s.program
                .fix
                .as_deref()
                .unwrap_or("run `acoupi check` for details"),
        );
    }
    if let Some(m) = &s.program.messages {
        let last = m
            .last_sent
            .as_deref()
            .map_or("none yet".into(), |t| format!("{t} (UTC)"));
        field(
            &mut out,
            "messages",
            &format!(
                "{} queued, {} sent, {} rejected; last sent {last}",
                m.queued, m.sent, m.rejected
            ),
        );
    }
    let d = &s.deployment;
    let active = d.status == DeploymentState::Active;
    out.push_str(&head(active, "Deployment"));
    out.push('\n');
    field(&mut out, "status", d.status.as_str());
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    if active {
        field(&mut out, "name", &opt(&d.name));
        field(
            &mut out,
            "latitude",
            &d.latitude.map_or("-".into(), |v| v.to_string()),
        );
        field(
            &mut out,
            "longitude",
            &d.longitude.map_or("-".into(), |v| v.to_string()),
        );
        field(
            &mut out,
            "started on",
            &format!("{} (UTC)", opt(&d.started_on)),
        );
        field(
            &mut out,
            "recordings",
            &d.recordings.map_or("-".into(), |v| v.to_string()),
        );
        field(
            &mut out,
            "last recording",
            &format!("{} (UTC)", opt(&d.last_recording)),
        );
        field(
            &mut out,
            "free space",
            &d.free_space_bytes.map_or("-".into(), |b| {
                format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
            }),
        );
        field(&mut out, "next window", &opt(&d.next_window));
    }
    if let Some(i) = &d.integrity {
        let line = match i.problems {
            None => format!("ok ({} at {} UTC)", i.check, i.checked_on),
            Some(_) => style::red(&format!("FAILED: {}", integrity_failure(i))),
        };
        field(&mut out, "database check", &line);
    }
    out
}

/// `active`, or e.g. `active, restarted 2× by systemd (see journalctl -u acoupi)`: a
/// service that keeps coming back after crashes or watchdog kills needs a look even
/// while it is up.
fn service_line(
    state: UnitState,
    restarts: Option<u32>,
    failure: &Option<String>,
    unit: &str,
) -> String {
    let mut line = state.to_string();
    if let Some(why) = failure {
        line.push_str(&format!(", last run failed: {why}"));
    }
    match restarts {
        Some(n) if n > 0 => line.push_str(&format!(", restarted {n}× by systemd")),
        _ if failure.is_none() => return line,
        _ => {}
    }
    line.push_str(&format!(" (see journalctl -u {unit})"));
    line
}
