//! Saves in the simulator, as libxl's asynchronous save behaves: starting one writes the image
//! file (exclusively) and suspends the guest at once; it ends later, in a thread of its own,
//! once the op's hold ([`SimHypervisor::hold`]), delay and the guest's [`Gate`](super::Gate)
//! let it. An abort lets it end at once, failed: the file is removed and the guest resumed, as
//! libxl kills its save helper and xenctl resumes the guest. A save of a killed client never
//! ends (its helper died with the daemon): the guest stays suspended and the file stays.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use uuid::Uuid;
use xenctl::{DomId, DomainEvent, DomainState, Error, LibxlErrorCode, ShutdownReason, Subject};

use super::{Op, SimHypervisor, emit};
use crate::hypervisor::{HvResult, SaveInProgress};

/// The first line of a simulated save image.
pub(super) const SIM_IMAGE: &str = "domainmgrd simulated save image";

/// A simulated save in progress.
struct SimSave {
    domid: DomId,
    aborted: Arc<AtomicBool>,
    sim: SimHypervisor,
    done: Receiver<HvResult<()>>,
}

impl SaveInProgress for SimSave {
    fn wait_until(&mut self, deadline: Instant) -> Option<HvResult<()>> {
        match self.done.recv_deadline(deadline) {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Err(Error::Libxl {
                op: "save",
                subject: Subject::Domain(self.domid),
                code: LibxlErrorCode::ERROR_FAIL,
            })),
        }
    }

    fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        let _st = self.sim.shared.state.lock();
        self.sim.shared.gates.notify_all();
    }
}

impl SimHypervisor {
    pub(super) fn sim_begin_save(&self, domid: DomId, partial: &Path) -> HvResult<Box<dyn SaveInProgress>> {
        let uuid = {
            let mut st = self.shared.state.lock();
            self.park_if_killed(&mut st);
            *st.calls.entry(Op::Save).or_default() += 1;
            self.count_toward_kill(&mut st, Op::Save);
            let uuid = self.target_gated(&mut st, domid, Op::Save, "save")?;
            let io = |source| Error::Io { op: "create save image", path: partial.into(), source };
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc_o_nofollow())
                .open(partial)
                .map_err(io)?;
            file.write_all(format!("{SIM_IMAGE}\n{uuid}\n").as_bytes()).map_err(io)?;
            if let Some(d) = st.domains.get_mut(&domid.get()) {
                d.state = DomainState::Shutdown(ShutdownReason::Suspend);
            }
            emit(&st, domid.get(), DomainEvent::Shutdown { domid, reason: ShutdownReason::Suspend });
            // A kill in its middle (or at its return) leaves the guest suspended and the image
            // half written, and the save never ends.
            if self.dies_midway(&mut st) {
                self.park_if_killed(&mut st);
            }
            self.park_if_killed(&mut st);
            uuid
        };
        let aborted = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (sim, flag, file) = (self.clone(), Arc::clone(&aborted), partial.to_path_buf());
        std::thread::Builder::new()
            .name(format!("sim-save-{domid}"))
            .spawn(move || {
                let end = sim.finish_save(domid, uuid, &file, &flag);
                let _ = tx.send(end);
            })
            .map_err(|source| Error::Os { op: "start a simulated save", source })?;
        Ok(Box::new(SimSave { domid, aborted, sim: self.clone(), done: rx }))
    }

    /// The save's end: after its hold, delay and gate, or at once when aborted; never for a
    /// killed client.
    fn finish_save(&self, domid: DomId, uuid: Uuid, file: &Path, aborted: &AtomicBool) -> HvResult<()> {
        let is_aborted = || aborted.load(Ordering::SeqCst);
        self.wait_op_gate(Op::Save, &is_aborted);
        let mut st = self.shared.state.lock();
        self.wait_gate(&mut st, uuid, Op::Save, &is_aborted);
        if let Some(delay) = st.delays.get(&Op::Save).copied() {
            let until = Instant::now() + delay;
            while Instant::now() < until && !is_aborted() {
                drop(st);
                std::thread::sleep(Duration::from_millis(5).min(until.saturating_duration_since(Instant::now())));
                st = self.shared.state.lock();
            }
        }
        self.park_if_killed(&mut st);
        if !is_aborted() {
            return Ok(());
        }
        let _ = std::fs::remove_file(file);
        if let Some(d) = st.domains.get_mut(&domid.get())
            && d.state == DomainState::Shutdown(ShutdownReason::Suspend)
        {
            d.state = DomainState::Running;
        }
        Err(Error::Libxl { op: "save", subject: Subject::Domain(domid), code: LibxlErrorCode::ERROR_ABORTED })
    }

    pub(super) fn sim_resume(&self, domid: DomId) -> HvResult<()> {
        self.enter(Op::Resume);
        let mut st = self.shared.state.lock();
        super::injection::target(&mut st, domid, Op::Resume, "resume")?;
        match st.domains.get_mut(&domid.get()) {
            Some(d) if d.state == DomainState::Shutdown(ShutdownReason::Suspend) => {
                d.state = DomainState::Running;
                Ok(())
            }
            _ => Err(Error::Libxl { op: "resume", subject: Subject::Domain(domid), code: LibxlErrorCode::ERROR_FAIL }),
        }
    }
}

/// `O_NOFOLLOW`, as the real save opens its file.
fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}
