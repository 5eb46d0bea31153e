//! A save that runs in the background and can be cut short: [`Context::begin_save`] starts
//! libxl's suspend-to-stream as an asynchronous operation and hands back a [`SaveJob`], whose
//! owner waits for it with a deadline and may [abort](SaveJob::abort) it (libxl kills its save
//! helper; the guest is resumed).
//!
//! The job writes the image to a file the caller names (usually `<image>.partial`), created
//! exclusively (never through a symlink, never over a file) and mode 0600. It never renames that
//! file: a successful job leaves a complete, synced image there and the domain suspended (shut
//! down with reason `suspend`), and the caller decides what becomes of both — commit the image
//! (rename it into place beside whatever record it keeps) and destroy the domain, as `xl save`
//! does, or throw the image away and [resume](Context::resume) the guest. A failed or aborted
//! job removes its file and resumes the guest itself. So a cut-short save ends in one defined
//! state: either a complete image that only its owner can put in place, or no image and a
//! running guest.
//!
//! How it works: the operation's completion callback runs on whichever thread drives libxl's
//! events (usually the context's event-loop thread). It is identified to libxl by a number that
//! is never reused (the `for_callback` value `libxl_ao_abort` matches on), and it finds the
//! job's channel and the image file in a process-wide table by that number. The file stays
//! open there until libxl is done with it, even if the [`SaveJob`] is dropped first. The same
//! machinery ([`Context::start_suspend`]) suspends to any fd: migration streams to a socket.

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use crate::context::{Context, Inner};
use crate::error::{Error, LibxlErrorCode, Result, Subject, check};
use crate::info::DomainState;
use crate::save::SaveImageHeader;
use crate::types::{DomId, ShutdownReason};

/// A suspend in flight: what its completion callback needs.
struct InFlight {
    done: Sender<(c_int, OwnedFd)>,
    fd: OwnedFd,
}

/// A `libxl_domain_suspend` started by [`Context::start_suspend`]: `done` delivers libxl's
/// return code and the fd back once libxl is done with it; `id` names it to
/// [`abort_suspend`].
pub(crate) struct Suspend {
    pub(crate) id: u64,
    pub(crate) done: Receiver<(c_int, OwnedFd)>,
}

/// Suspends in flight by their id (libxl's `for_callback`).
static IN_FLIGHT: Mutex<Option<HashMap<u64, InFlight>>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The ao_how that starts (and identifies, for an abort) the save with `id`.
fn how(id: u64) -> xen_sys::libxl_asyncop_how {
    xen_sys::libxl_asyncop_how {
        callback: Some(save_done),
        // The id, not a pointer: libxl only compares it and hands it back.
        u: xen_sys::libxl_asyncop_how__bindgen_ty_1 { for_callback: id as usize as *mut c_void },
    }
}

/// libxl's completion callback of a suspend.
///
/// # Safety
/// Only libxl calls it, once per suspend started by [`Context::start_suspend`], with that
/// suspend's `for_callback` (its id).
unsafe extern "C" fn save_done(_ctx: *mut xen_sys::libxl_ctx, rc: c_int, for_callback: *mut c_void) {
    let _ = std::panic::catch_unwind(|| {
        let id = for_callback as usize as u64;
        let slot = IN_FLIGHT.lock().as_mut().and_then(|m| m.remove(&id));
        match slot {
            // If the job was dropped, the fd closes here and nobody hears the result.
            Some(InFlight { done, fd }) => drop(done.send((rc, fd))),
            None => log::error!("libxl completed suspend {id}, which is not in flight"),
        }
    });
}

/// A save started by [`Context::begin_save`].
///
/// Dropping it before it ends aborts the save; its partial file may then remain.
#[derive(Debug)]
pub struct SaveJob {
    inner: Arc<Inner>,
    id: u64,
    domid: DomId,
    partial: PathBuf,
    done: Receiver<(c_int, OwnedFd)>,
    ended: bool,
}

impl Context {
    /// Starts saving `domid` to `partial` (xl's image format: header, config, libxl stream),
    /// in the background. The file is created exclusively with mode 0600: an existing file or
    /// symlink there is an error. See the module docs for what the job leaves behind.
    pub fn begin_save(&self, domid: DomId, partial: &Path) -> Result<SaveJob> {
        if domid.is_dom0() {
            return Err(Error::Dom0Refused { op: "save" });
        }
        let config_json = self.domain_config_json(domid)?;
        let io = |op: &'static str| move |source| Error::Io { op, path: partial.into(), source };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(partial)
            .map_err(io("create save image"))?;
        if let Err(e) = file.write_all(&SaveImageHeader::encode(&config_json)) {
            let _ = std::fs::remove_file(partial);
            return Err(io("write save image")(e));
        }
        let Suspend { id, done } = match self.start_suspend(domid, OwnedFd::from(file), 0) {
            Ok(started) => started,
            Err(rc) => {
                let _ = std::fs::remove_file(partial);
                return Err(Error::from_libxl("save", Subject::Domain(domid), rc));
            }
        };
        log::debug!("domain {domid}: saving to {}", partial.display());
        Ok(SaveJob { inner: Arc::clone(&self.inner), id, domid, partial: partial.to_path_buf(), done, ended: false })
    }

    /// Starts libxl's suspend of `domid` to `fd` in the background, with `flags`
    /// (`LIBXL_SUSPEND_*`): the stream is written to `fd`, which stays open until libxl is
    /// done and then comes back through [`Suspend::done`] with libxl's return code.
    /// `Err(rc)`: libxl refused to start; `fd` is closed and no callback will come.
    pub(crate) fn start_suspend(&self, domid: DomId, fd: OwnedFd, flags: c_int) -> Result<Suspend, c_int> {
        let raw_fd = fd.as_raw_fd();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = crossbeam_channel::bounded(1);
        IN_FLIGHT.lock().get_or_insert_with(HashMap::new).insert(id, InFlight { done: tx, fd });
        let how = how(id);
        // SAFETY: ctx is live; the fd stays open in IN_FLIGHT until the completion callback
        // takes it; libxl copies *how; save_done is the callback for this id.
        let rc = unsafe { xen_sys::libxl_domain_suspend(self.raw(), domid.get(), raw_fd, flags, &how) };
        if rc != 0 {
            // Not started: libxl will not call back.
            IN_FLIGHT.lock().as_mut().and_then(|m| m.remove(&id));
            return Err(rc);
        }
        // The operation registered fds and timeouts the event-loop thread must poll.
        self.inner.wake_event_loop();
        Ok(Suspend { id, done: rx })
    }

    /// Lets a domain that was suspended for a save run again (libxl's resume with
    /// `suspend_cancel`: the guest carries on as if the save had never happened).
    pub fn resume(&self, domid: DomId) -> Result<()> {
        if domid.is_dom0() {
            return Err(Error::Dom0Refused { op: "resume" });
        }
        // SAFETY: ctx is live; synchronous call.
        let rc = unsafe { xen_sys::libxl_domain_resume(self.raw(), domid.get(), 1, std::ptr::null()) };
        check(rc, "resume", || Subject::Domain(domid))?;
        log::info!("domain {domid} resumed");
        Ok(())
    }

    /// Resumes `domid` if it is suspended (shut down for a save); anything else is left alone.
    /// `Ok(true)`: it was suspended and now runs again.
    pub(crate) fn resume_if_suspended(&self, domid: DomId) -> Result<bool> {
        match self.info(domid) {
            Ok(info) if info.state == DomainState::Shutdown(ShutdownReason::Suspend) => {
                self.resume(domid).map(|()| true)
            }
            Ok(_) | Err(Error::DomainNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl SaveJob {
    /// The domain being saved.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// The file the image is written to.
    pub fn partial(&self) -> &Path {
        &self.partial
    }

    /// Waits until `deadline` for the save to end: `None` if it has not by then.
    ///
    /// `Some(Ok(()))`: the image at [`partial`](Self::partial) is complete and synced, and the
    /// domain is suspended. `Some(Err(_))`: the save failed or was aborted; the file is gone and
    /// the guest was resumed. After the first `Some`, later calls return `Some(Err(_))`.
    pub fn wait_until(&mut self, deadline: Instant) -> Option<Result<()>> {
        if self.ended {
            return Some(Err(self.failed(LibxlErrorCode::ERROR_INVAL)));
        }
        let (rc, file) = match self.done.recv_deadline(deadline) {
            Ok((rc, fd)) => (rc, Some(File::from(fd))),
            Err(RecvTimeoutError::Timeout) => return None,
            // The callback's sender is only dropped after it sent.
            Err(RecvTimeoutError::Disconnected) => (xen_sys::ERROR_FAIL, None),
        };
        self.ended = true;
        let result = match file {
            Some(file) if rc == 0 => file.sync_all().map_err(|source| Error::Io {
                op: "sync save image",
                path: self.partial.clone(),
                source,
            }),
            _ => Err(Error::from_libxl("save", Subject::Domain(self.domid), rc)),
        };
        if result.is_err() {
            let _ = std::fs::remove_file(&self.partial);
            if let Err(e) = (Context { inner: Arc::clone(&self.inner) }).resume_if_suspended(self.domid) {
                log::error!("domain {}: resume after a failed save failed too: {e}", self.domid);
            }
        }
        Some(result)
    }

    /// Waits for the save to end (see [`wait_until`](Self::wait_until)).
    pub fn wait(&mut self) -> Result<()> {
        loop {
            let far = Instant::now() + std::time::Duration::from_secs(3600);
            if let Some(r) = self.wait_until(far) {
                return r;
            }
        }
    }

    /// Asks libxl to cut the save short. It may still complete (it was nearly done); either
    /// way [`wait_until`](Self::wait_until) reports how it ended.
    pub fn abort(&self) {
        if self.ended {
            return;
        }
        match abort_suspend(&self.inner, self.id) {
            0 => log::info!("domain {}: save to {} is being aborted", self.domid, self.partial.display()),
            rc => log::debug!("domain {}: abort of its save: {rc} (it has ended)", self.domid),
        }
    }

    fn failed(&self, code: LibxlErrorCode) -> Error {
        Error::Libxl { op: "save", subject: Subject::Domain(self.domid), code }
    }
}

/// Asks libxl to cut the suspend with `id` short: libxl's return code (non-zero if it had
/// ended already).
pub(crate) fn abort_suspend(inner: &Inner, id: u64) -> c_int {
    let how = how(id);
    // SAFETY: ctx is live; how identifies that operation (ids are never reused, so it cannot
    // match another suspend).
    unsafe { xen_sys::libxl_ao_abort(inner.raw(), &how) }
}

impl Drop for SaveJob {
    fn drop(&mut self) {
        if !self.ended {
            self.abort();
        }
    }
}
