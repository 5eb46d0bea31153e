//! Live migration between hosts, speaking `xl migrate`'s protocol so either end may be `xl`:
//! [`Context::migrate_send`] does on the source what xl's `migrate_domain` does, up to the
//! target's final report, and leaves the destroy of the source copy to its caller;
//! [`Context::migrate_receive`] does on the target what `xl migrate-receive` does. The wire
//! protocol and both state machines (which failure leaves which copy running) live in
//! `migrate_wire`; this module is their libxl side.
//!
//! # How domainmgrd uses it
//! Source: `domainctl migrate NAME HOST [--live]` asks the daemon, which spawns the transport
//! as xl does (`ssh HOST domainctl migrate-receive`, or `ssh HOST xl migrate-receive` to a
//! host run by xl; the ssh command configurable like xl's `-s`) with stdin and stdout piped
//! and stderr into its log, and calls `migrate_send(domid, live,
//! MigrationStream::new(child_stdout, child_stdin))` on a worker thread (it blocks for the
//! whole transfer; killing the child cancels it, and the guest is resumed). On
//! [`MigrateOutcome::Migrated`] it destroys the source copy and forgets the domain; on `Err`
//! the guest runs here as before; on [`MigrateOutcome::InDoubt`] it touches neither copy and
//! shows the domain as needing an operator. Meanwhile its domain watch must not act on the
//! guest's `Shutdown { reason: Suspend }` (as for a save). It then reaps the child, with a
//! deadline, logging its exit status (xl's `migration_child_report`).
//!
//! Target: ssh runs `domainctl migrate-receive`, whose stdin and stdout are the stream. We
//! recommend that it pass both fds to the local daemon over the control socket (SCM_RIGHTS,
//! with nix's safe `sendmsg`), the daemon run `migrate_receive` on a context of its own (a
//! restore holds its libxl ctx for the whole transfer), and `domainctl` wait for the daemon's
//! answer and exit 0 or 1 like `xl migrate-receive` (sshd may close the session when the
//! command exits). We prefer this to running `migrate_receive` inside `domainctl` because the
//! daemon is the one owner of the host's domains: it has the domain's spec (`spec_override`),
//! its pre-run setup (vif offloads, in `prepare`, before the sender is told the domain
//! arrived), its event watch from the first moment, and its name registry; a second libxl user
//! would race it, and the daemon would have to adopt a domain it did not see arrive.
//!
//! # Interoperability with xl (4.17)
//! - xl to us: `xl migrate` runs `exec ssh HOST xl [-t] [-T] [-v..] migrate-receive [-e] [-d]
//!   [-p]` (`main_migrate`), naming `xl` on the target. With an empty ssh command its HOST
//!   argument is the whole command: `xl migrate -s '' NAME 'ssh HOST domainctl
//!   migrate-receive'`. `domainctl migrate-receive` should accept and ignore `-e` and `-F` (no
//!   xl monitor: domainmgrd monitors), take `-d` as "log the config", and refuse `-p` (leave
//!   it paused), `-r` and `--colo` (checkpointed streams) clearly.
//! - Us to xl: the receiver is `xl migrate-receive`; without `-e` (which `xl migrate` passes
//!   only when given `-e` or `-F`) it leaves a daemon monitoring the domain, as `xl create`
//!   does, which is what a host run by xl wants.
//! - The config travels in the stream's xl save-file header as libxl JSON. xl's sender sends
//!   the domain's retrieved config, or with `-C FILE` that xl.cfg file converted, and with `-D`
//!   keeps the domid in it (a receiver then asks for the same domid, as ours does). Ours sends
//!   [`Context::domain_config_json`] (retrieved, this process's private scripts left out,
//!   domid 0). xl's receiver takes no config of its own; ours may (`spec_override`, like
//!   `xl restore CONFIG`), for a domain the target's daemon manages.
//! - Names: the receiver restores as `NAME--incoming` and renames after permission to go; the
//!   sender renames its copy `NAME--migratedaway` first (so both may be one host), back after
//!   a target failure, and the caller destroys it after success.
//! - `--live`: xl 4.17 ignores it and always suspends with `LIBXL_SUSPEND_LIVE` (pre-copy
//!   while the guest runs). Our `live: false` is a stop-and-copy, as `xl save` does: longer
//!   downtime, less traffic; the receiver cannot tell. xl's `--debug` (`LIBXL_SUSPEND_DEBUG`,
//!   a verify pass over the memory) is not offered.
//! - The status byte is minus libxl's error code (xl reports 255 for a protocol failure); the
//!   header is native-endian, so both hosts must share a byte order (x86 does).
//! - Where xl's receiver leaves a paused copy (its "ready" message cannot be written), ours
//!   destroys it; the sender resumes its own either way.

use std::fs::File;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;

use crate::context::Context;
use crate::error::{Error, Result, Subject, check};
use crate::migrate_wire::{self, INCOMING, SenderEnd, SourceDomain, TargetDomain};
use crate::raw;
use crate::save::SaveImageHeader;
use crate::spec::DomainSpec;
use crate::types::DomId;

/// How often a wait for libxl's suspend checks that the context still delivers events.
const HEALTH_POLL: Duration = Duration::from_secs(1);

/// The two directions of a migration's byte stream, as blocking fds: what this end reads from
/// the peer and what it writes to it (a child's stdout and stdin, a process's stdin and
/// stdout, or both ways one socket).
///
/// Never buffered: libxl reads or writes the domain's stream on these fds directly, between
/// the protocol's messages.
#[derive(Debug)]
pub struct MigrationStream {
    // Files only as owners of the fds, for their Read and Write.
    reader: File,
    writer: File,
}

impl MigrationStream {
    /// A stream that reads from `reader` and writes to `writer` (e.g. a
    /// [`ChildStdout`](std::process::ChildStdout) and [`ChildStdin`](std::process::ChildStdin)).
    pub fn new(reader: impl Into<OwnedFd>, writer: impl Into<OwnedFd>) -> MigrationStream {
        MigrationStream { reader: File::from(reader.into()), writer: File::from(writer.into()) }
    }

    /// The two fds back, as files: what this end reads from and writes to.
    pub fn into_files(self) -> (File, File) {
        (self.reader, self.writer)
    }

    /// A stream both ways over one connected socket.
    pub fn from_socket(socket: UnixStream) -> Result<MigrationStream> {
        let reader = socket.try_clone().map_err(|source| Error::Os { op: "duplicate the migration socket", source })?;
        Ok(MigrationStream::new(reader, socket))
    }
}

/// How [`Context::migrate_send`] ended when it cannot simply say "failed, and the domain is
/// here as it was" (its `Err`): the domain left, or it is stuck here, or nobody can tell.
#[derive(Debug)]
#[must_use = "the source copy must be destroyed after Migrated, and left alone otherwise"]
pub enum MigrateOutcome {
    /// The target reported its copy running. Ours is suspended and named
    /// `NAME--migratedaway`: destroy it now (xl does at once).
    Migrated,
    /// The target has no copy (it failed and destroyed its own, or never got that far), but
    /// ours could not be resumed: it exists here, suspended.
    SourceSuspended {
        /// Why the migration failed.
        error: Error,
        /// Why resuming our copy failed (try [`Context::resume`] again).
        resume_error: Error,
    },
    /// The final handshake broke after permission to go may have reached the target: its
    /// copy may run. Ours is left suspended (named `NAME--migratedaway`, if it had a name);
    /// destroy or resume neither until someone has looked at both hosts (xl's "Domain state is
    /// now undefined").
    InDoubt {
        /// What broke.
        error: Error,
    },
}

/// A domain [`Context::migrate_receive`] received and started.
#[derive(Debug)]
#[non_exhaustive]
pub struct ReceivedDomain {
    /// Its id here; it is running under its own name.
    pub domid: DomId,
    /// The config that came with it, as libxl JSON (what `xl -N create` prints), even when a
    /// spec overrode it.
    pub config_json: String,
    /// Whether the sender heard that the domain runs here. If not, it keeps its copy
    /// suspended and in doubt, and an operator should destroy that copy.
    pub sender_notified: bool,
}

impl Context {
    /// Sends `domid` to the receiver at the other end of `stream`, in xl's protocol (which
    /// the module docs summarise), and returns once the receiver has reported whether its copy
    /// runs. The domain keeps running here during a `live` transfer (pre-copy), or is stopped
    /// for all of it otherwise.
    ///
    /// - `Ok(Migrated)`: the target runs the domain; the caller destroys `domid` now.
    /// - `Err(_)`: it did not migrate and is here as it was (running again if it had been
    ///   suspended; the target has no copy). A receiver that failed after permission to go
    ///   gives the domain back and this is an error too.
    /// - `Ok(SourceSuspended)`, `Ok(InDoubt)`: see [`MigrateOutcome`].
    ///
    /// Cancel it by closing the peer's end (killing the transport): every later step fails and
    /// the guest is resumed, unless permission to go was already being sent.
    pub fn migrate_send(&self, domid: DomId, live: bool, stream: MigrationStream) -> Result<MigrateOutcome> {
        if domid.is_dom0() {
            return Err(Error::Dom0Refused { op: "migrate" });
        }
        let header = SaveImageHeader::encode(&self.domain_config_json(domid)?);
        let name = self.domain_name(domid);
        let flags = if live { xen_sys::LIBXL_SUSPEND_LIVE as i32 } else { 0 };
        let how = if live { "live" } else { "stop-and-copy" };
        log::info!("domain {domid} ({}): migrating ({how})", name.as_deref().unwrap_or("unnamed"));
        let MigrationStream { mut reader, mut writer } = stream;
        let mut source = LibxlSource { ctx: self, domid, name, flags };
        match migrate_wire::run_sender(&mut reader, &mut writer, &header, &mut source) {
            SenderEnd::Migrated => {
                log::info!("domain {domid}: migrated; the target runs it");
                Ok(MigrateOutcome::Migrated)
            }
            SenderEnd::Kept { error, resume: Ok(()) } => Err(error),
            SenderEnd::Kept { error, resume: Err(resume_error) } => {
                log::error!("domain {domid}: migration failed ({error}) and resuming it failed: {resume_error}");
                Ok(MigrateOutcome::SourceSuspended { error, resume_error })
            }
            SenderEnd::InDoubt { error, state } => {
                log::error!("domain {domid}: migration broke in its final handshake ({state:?}): {error}");
                Ok(MigrateOutcome::InDoubt { error })
            }
        }
    }

    /// Receives a domain from the sender at the other end of `stream` (an `xl migrate` or a
    /// [`migrate_send`](Context::migrate_send)), as `xl migrate-receive` does: restores it
    /// paused, calls `prepare` with its domid, tells the sender it arrived, and on permission
    /// to go gives it its name and unpauses it. `choose` is called with the config that came
    /// with it (libxl JSON) before anything is restored: its `Err` refuses the domain (the
    /// sender keeps it), `Some(spec)` configures it instead of that config (it must describe
    /// the same guest, like `xl restore CONFIG`), `None` takes the config as it came.
    ///
    /// On `Err` no copy is left here (unless destroying it failed too, which is logged) and the
    /// sender, told or not, keeps and resumes its own. A failing `prepare` fails the migration
    /// before the sender is told.
    pub fn migrate_receive(
        &self,
        stream: MigrationStream,
        choose: impl FnOnce(&str) -> Result<Option<DomainSpec>>,
        prepare: impl FnOnce(DomId) -> Result<()>,
    ) -> Result<ReceivedDomain> {
        let MigrationStream { mut reader, mut writer } = stream;
        let mut target = LibxlTarget { ctx: self, choose: Some(choose), prepare: Some(prepare), name: None };
        let arrived = migrate_wire::run_receiver(&mut reader, &mut writer, &mut target)?;
        log::info!(
            "domain '{}' migrated in, running as domain {}",
            target.name.as_deref().unwrap_or("unnamed"),
            arrived.domid
        );
        Ok(ReceivedDomain {
            domid: arrived.domid,
            config_json: arrived.config_json,
            sender_notified: arrived.sender_told,
        })
    }

    /// Renames `domid` from `from` to `to`; libxl checks, atomically, that it is still `from`.
    fn rename_domain(&self, domid: DomId, from: &str, to: &str) -> Result<()> {
        let from_c = raw::c_string("name", from)?;
        let to_c = raw::c_string("name", to)?;
        // SAFETY: ctx is live; both are valid C strings for the synchronous call.
        let rc = unsafe { xen_sys::libxl_domain_rename(self.raw(), domid.get(), from_c.as_ptr(), to_c.as_ptr()) };
        check(rc, "rename", || Subject::Domain(domid))
    }
}

/// The source's libxl side.
struct LibxlSource<'a> {
    ctx: &'a Context,
    domid: DomId,
    name: Option<String>,
    flags: i32,
}

impl LibxlSource<'_> {
    fn away_name(name: &str) -> String {
        format!("{name}--migratedaway")
    }
}

impl SourceDomain for LibxlSource<'_> {
    fn domid(&self) -> DomId {
        self.domid
    }

    fn send_stream(&mut self, to: BorrowedFd<'_>) -> Result<()> {
        let failed = |rc| Error::from_libxl("migrate", Subject::Domain(self.domid), rc);
        // libxl's own copy of the fd, closed only once libxl is done with it.
        let fd =
            to.try_clone_to_owned().map_err(|source| Error::Os { op: "duplicate the migration stream", source })?;
        let suspend = self.ctx.start_suspend(self.domid, fd, self.flags).map_err(failed)?;
        loop {
            match suspend.done.recv_timeout(HEALTH_POLL) {
                Ok((0, _fd)) => return Ok(()),
                Ok((rc, _fd)) => return Err(failed(rc)),
                // The callback's sender is only dropped after it sent.
                Err(RecvTimeoutError::Disconnected) => return Err(failed(xen_sys::ERROR_FAIL)),
                Err(RecvTimeoutError::Timeout) => self.ctx.health()?,
            }
        }
    }

    fn rename_away(&mut self) -> Result<()> {
        match &self.name {
            Some(name) => self.ctx.rename_domain(self.domid, name, &Self::away_name(name)),
            None => Ok(()),
        }
    }

    fn rename_back(&mut self) -> Result<()> {
        match &self.name {
            Some(name) => self.ctx.rename_domain(self.domid, &Self::away_name(name), name),
            None => Ok(()),
        }
    }

    fn resume(&mut self) -> Result<()> {
        self.ctx.resume_if_suspended(self.domid).map(drop)
    }
}

/// The target's libxl side.
struct LibxlTarget<'a, C, F> {
    ctx: &'a Context,
    choose: Option<C>,
    prepare: Option<F>,
    /// The domain's own name, once its config is read.
    name: Option<String>,
}

impl<C, F> LibxlTarget<'_, C, F> {
    fn incoming_name(name: &str) -> String {
        format!("{name}--incoming")
    }
}

impl<C, F> TargetDomain for LibxlTarget<'_, C, F>
where
    C: FnOnce(&str) -> Result<Option<DomainSpec>>,
    F: FnOnce(DomId) -> Result<()>,
{
    fn restore(&mut self, header: &SaveImageHeader, from: BorrowedFd<'_>, send_back: BorrowedFd<'_>) -> Result<DomId> {
        let Some(json) = &header.config_json else {
            let reason = "carries no domain config".into();
            return Err(Error::BadSaveImage { path: INCOMING.into(), reason });
        };
        let chosen = match self.choose.take() {
            Some(choose) => choose(json)?,
            None => None,
        };
        let mut cfg = match &chosen {
            Some(spec) => self.ctx.libxl_config(spec)?,
            None => self.ctx.config_from_json(json, Path::new(INCOMING))?,
        };
        // SAFETY: c_info.name is null or a string owned by cfg.
        self.name = unsafe { raw::string_from_c(cfg.as_raw().c_info.name) };
        // Received under a temporary name, as xl's create_domain does for a migration.
        if let Some(name) = &self.name {
            let incoming = raw::strdup("name", &Self::incoming_name(name))?;
            // SAFETY: cfg is exclusively ours; the old name was malloc'd by libxl or strdup and
            // is freed once, the new one is malloc'd and cfg's dispose frees it.
            unsafe {
                let c_info = &mut (*cfg.as_mut_ptr()).c_info;
                libc::free(c_info.name.cast());
                c_info.name = incoming;
            }
        }
        let label = self.name.as_deref().map_or_else(|| "unnamed".into(), Self::incoming_name);
        let domid = self.ctx.restore_from_fd(&mut cfg, from, Some(send_back), header.stream_version, &label)?;
        log::info!("domain '{label}' received paused as domain {domid}");
        Ok(domid)
    }

    fn prepare(&mut self, domid: DomId) -> Result<()> {
        match self.prepare.take() {
            Some(prepare) => prepare(domid),
            None => Ok(()),
        }
    }

    fn start(&mut self, domid: DomId) -> Result<()> {
        if let Some(name) = &self.name {
            self.ctx.rename_domain(domid, &Self::incoming_name(name), name)?;
        }
        self.ctx.unpause(domid)
    }

    fn destroy(&mut self, domid: DomId) -> Result<()> {
        self.ctx.destroy(domid)
    }
}
