//! Migrations in the simulator, between two simulated hosts (two daemons' simulators) over
//! whatever stream joins them, with the same ends as xl's protocol: the source suspends its
//! copy and sends the config (libxl JSON) and a stand-in for the memory; the target asks its
//! caller, restores paused, prepares, and says "ready"; on "go" it unpauses and says "done",
//! and the source's copy stays suspended for its caller to destroy. A failure before "go"
//! resumes the source; a stream cut after it leaves the source in doubt. `Op::Migrate` faults
//! fail the source's send; `Op::Restore` faults fail the target's restore.

use std::io::{BufRead, BufReader, Write};

use xenctl::{DomId, DomainEvent, DomainSpec, DomainState, Error, MigrateOutcome, ShutdownReason, Subject};

use super::{Op, SimHypervisor, emit, failed, new_domain};
use crate::hypervisor::{Choose, HvResult, Received};

/// The first line of a simulated migration stream.
const BANNER: &str = "domainmgrd simulated migration";

fn wire(what: &str, e: std::io::Error) -> Error {
    Error::Os { op: "migrate (simulated stream)", source: std::io::Error::new(e.kind(), format!("{what}: {e}")) }
}

fn read_line(r: &mut impl BufRead, what: &str) -> HvResult<String> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => Err(wire(what, std::io::ErrorKind::UnexpectedEof.into())),
        Ok(_) => Ok(line.trim_end().to_string()),
        Err(e) => Err(wire(what, e)),
    }
}

impl SimHypervisor {
    pub(super) fn sim_migrate_send(
        &self,
        domid: DomId,
        live: bool,
        stream: xenctl::MigrationStream,
    ) -> HvResult<MigrateOutcome> {
        self.enter(Op::Migrate);
        let spec = {
            let mut st = self.shared.state.lock();
            self.park_if_killed(&mut st);
            *st.calls.entry(Op::Migrate).or_default() += 1;
            let uuid = super::injection::target(&mut st, domid, Op::Migrate, "migrate")?;
            if SimHypervisor::take_fault(&mut st, uuid, Op::Migrate) {
                return Err(failed("migrate", Subject::Domain(domid)));
            }
            let d = st.domains.get_mut(&domid.get()).ok_or_else(|| super::not_found("migrate", domid))?;
            d.state = DomainState::Shutdown(ShutdownReason::Suspend);
            let spec = d.spec.clone();
            emit(&st, domid.get(), DomainEvent::Shutdown { domid, reason: ShutdownReason::Suspend });
            // A kill in its middle leaves the guest suspended, and the send never ends.
            self.count_toward_kill(&mut st, Op::Migrate);
            if self.dies_midway(&mut st) {
                self.park_if_killed(&mut st);
            }
            spec
        };
        self.delay(Op::Migrate);
        let (reader, mut writer) = stream.into_files();
        let mut reader = BufReader::new(reader);
        let resume = |e: Error| {
            let _ = self.sim_resume(domid);
            Err(e)
        };
        let json = match spec.libxl_json.clone().map_or_else(|| spec.to_libxl_json(), Ok) {
            Ok(j) => j.replace('\n', " "),
            Err(e) => return resume(e),
        };
        let how = if live { "live" } else { "stop-and-copy" };
        if let Err(e) = writeln!(writer, "{BANNER}\n{how}\n{json}") {
            return resume(wire("send the domain", e));
        }
        match read_line(&mut reader, "read the target's answer") {
            Ok(line) if line == "ready" => {}
            Ok(line) => return resume(Error::Refused { reason: format!("the target refused it: {line}") }),
            Err(e) => return resume(e),
        }
        if let Err(e) = writeln!(writer, "go") {
            return Ok(MigrateOutcome::InDoubt { error: wire("send go", e) });
        }
        match read_line(&mut reader, "read the target's report") {
            Ok(line) if line == "done" => Ok(MigrateOutcome::Migrated),
            Ok(line) => Ok(MigrateOutcome::InDoubt { error: Error::Refused { reason: line } }),
            Err(error) => Ok(MigrateOutcome::InDoubt { error }),
        }
    }

    pub(super) fn sim_migrate_receive(
        &self,
        stream: xenctl::MigrationStream,
        choose: Choose<'_>,
        prepare: &mut dyn FnMut(DomId) -> HvResult<()>,
    ) -> HvResult<Received> {
        let (reader, mut writer) = stream.into_files();
        let mut reader = BufReader::new(reader);
        let refuse = |writer: &mut std::fs::File, e: Error| {
            let _ = writeln!(writer, "refused: {e}");
            Err(e)
        };
        if read_line(&mut reader, "read the banner")? != BANNER {
            return refuse(&mut writer, Error::Refused { reason: "not a simulated migration".into() });
        }
        let _how = read_line(&mut reader, "read the mode")?;
        let json = read_line(&mut reader, "read the config")?;
        let spec = match choose(&json) {
            Ok(Some(spec)) => spec,
            Ok(None) => match DomainSpec::from_libxl_json(&json) {
                Ok(spec) => spec,
                Err(e) => return refuse(&mut writer, e),
            },
            Err(e) => return refuse(&mut writer, e),
        };
        self.enter(Op::Restore);
        let domid = {
            let mut st = self.shared.state.lock();
            self.park_if_killed(&mut st);
            *st.calls.entry(Op::Restore).or_default() += 1;
            if st.domains.values().any(|d| d.spec.name == spec.name)
                || SimHypervisor::take_fault(&mut st, spec.uuid, Op::Restore)
            {
                drop(st);
                return refuse(&mut writer, failed("restore", Subject::Named(spec.name.clone())));
            }
            let domid = new_domain(&mut st, &spec, DomainState::Paused);
            if let Some(d) = st.domains.get_mut(&domid.get()) {
                d.ever_unpaused = true;
            }
            domid
        };
        let destroy = |e: Error| {
            let _ = crate::hypervisor::Hypervisor::destroy(self, domid);
            e
        };
        if let Err(e) = prepare(domid) {
            let e = destroy(e);
            return refuse(&mut writer, e);
        }
        if let Err(e) = writeln!(writer, "ready") {
            return Err(destroy(wire("send ready", e)));
        }
        match read_line(&mut reader, "read go") {
            Ok(line) if line == "go" => {}
            Ok(line) => return Err(destroy(Error::Refused { reason: format!("the sender said {line:?}") })),
            Err(e) => return Err(destroy(e)),
        }
        {
            let mut st = self.shared.state.lock();
            if let Some(d) = st.domains.get_mut(&domid.get()) {
                d.state = DomainState::Running;
            }
        }
        let sender_notified = writeln!(writer, "done").is_ok();
        Ok(Received { domid, config_json: json, sender_notified })
    }
}
