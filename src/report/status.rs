//! `cloudcfg status`: what cloud-init status (>= 23.4) answers, from /run/cloudcfg/status.json.
//! Exit 0 when done or still running, 1 when the run was critical (nothing could run), 2 when it
//! finished with recoverable errors (a module failed). `--wait` blocks until the run is over.

use std::path::Path;
use std::time::Duration;

use super::{ModuleState, RunStatus, Status, read_status};

pub fn exit_code(status: Option<&Status>) -> u8 {
    match status.map(|s| s.status) {
        None | Some(RunStatus::Running | RunStatus::Done) => 0,
        Some(RunStatus::Error) => 1,
        Some(RunStatus::Degraded) => 2,
    }
}

fn name(status: Option<&Status>) -> &'static str {
    match status.map(|s| s.status) {
        None => "not started",
        Some(RunStatus::Running) => "running",
        Some(RunStatus::Done) => "done",
        Some(RunStatus::Degraded) => "degraded",
        Some(RunStatus::Error) => "error",
    }
}

/// Waits while no run has finished this boot (none started yet, or one running), like
/// `cloud-init status --wait`; returns `None` at once when no run has started and `disabled`
/// says cloudcfg is disabled (the unit will not start one).
pub fn wait(
    runtime_dir: &Path,
    disabled: impl Fn() -> Option<String>,
) -> std::io::Result<Option<Status>> {
    loop {
        let status = read_status(runtime_dir)?;
        match &status {
            Some(s) if s.status != RunStatus::Running => return Ok(status),
            None if disabled().is_some() => return Ok(None),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn text(status: Option<&Status>, long: bool) -> String {
    let mut out = format!("status: {}\n", name(status));
    let Some(s) = status.filter(|_| long) else {
        return out;
    };
    out.push_str(&format!("datasource: {}\n", s.datasource));
    if let Some(id) = &s.instance_id {
        out.push_str(&format!("instance: {id}\n"));
    }
    out.push_str(&format!("started: {}\n", s.started));
    if let Some(f) = &s.finished {
        out.push_str(&format!("finished: {f}\n"));
    }
    if !s.modules.is_empty() {
        out.push_str("modules:\n");
    }
    for m in &s.modules {
        let state = match m.status {
            ModuleState::Pending => "pending",
            ModuleState::Running => "running",
            ModuleState::Ok => "ok",
            ModuleState::Failed => "failed",
            ModuleState::Skipped => "skipped",
        };
        let detail = m
            .error
            .as_deref()
            .or(m.reason.as_deref())
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        out.push_str(&format!("  {}: {state}{detail}\n", m.name));
    }
    for e in &s.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    for e in &s.recoverable_errors {
        out.push_str(&format!("recoverable error: {e}\n"));
    }
    out
}

/// `status` when no run started this boot and cloudcfg is disabled (exit 0, as cloud-init's
/// `status: disabled`).
pub fn disabled_text(reason: &str, long: bool) -> String {
    if long {
        format!("status: disabled\ndetail: {reason}\n")
    } else {
        "status: disabled\n".to_owned()
    }
}

pub fn disabled_json(reason: &str) -> serde_json::Value {
    serde_json::json!({"status": "disabled", "detail": reason})
}

pub fn json(status: Option<&Status>) -> serde_json::Value {
    match status {
        Some(s) => serde_json::to_value(s).unwrap_or_default(),
        None => serde_json::json!({"status": "not started"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_cloud_init() {
        let mut s = Status::new("ec2", Some("i-1"), &["apt_configure"]);
        assert_eq!(exit_code(Some(&s)), 0);
        s.recoverable_errors.push("apt_configure: x".into());
        s.finish();
        assert_eq!(s.status, RunStatus::Degraded);
        assert_eq!(exit_code(Some(&s)), 2);
        let c = Status::critical("none", None, "no datasource".into());
        assert_eq!(exit_code(Some(&c)), 1);
        assert_eq!(exit_code(None), 0);
        assert!(text(Some(&c), true).contains("error: no datasource"));
    }

    #[test]
    fn wait_returns_when_disabled_and_nothing_ran() {
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let status = wait(dir.path(), || Some("test".into())).unwrap();
        assert!(status.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(disabled_text("x", true), "status: disabled\ndetail: x\n");
    }

    #[test]
    fn wait_follows_a_run_to_its_end_even_when_disabled_later() {
        let dir = tempfile::tempdir().unwrap();
        let reporter = super::super::Reporter::new(dir.path(), dir.path(), true);
        let mut s = Status::new("nocloud", Some("i-1"), &["apt_configure"]);
        reporter.write(&s);
        let waiter = {
            let dir = dir.path().to_owned();
            std::thread::spawn(move || wait(&dir, || Some("disabled".into())))
        };
        std::thread::sleep(Duration::from_millis(600));
        assert!(!waiter.is_finished(), "returned while the run was running");
        s.finish();
        reporter.write(&s);
        let status = waiter.join().unwrap().unwrap().unwrap();
        assert_eq!(status.status, RunStatus::Done);
    }
}
