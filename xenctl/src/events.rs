//! Domain events (shutdown with its reason, death) pushed to callers over channels, no polling.
//!
//! How events flow: libxl is told (`libxl_event_register_callbacks`) to hand every event to
//! [`event_occurs`] instead of queueing it. libxl calls that on whichever thread noticed the
//! event: our event-loop thread, or any thread inside a synchronous libxl call at the time. It
//! looks up the watch the event was enabled for (libxl's `for_user` value) in the
//! [`EventRouter`] and sends a [`DomainEvent`] down that watch's channel.
//!
//! Why callbacks rather than `libxl_event_check`: an event generated inside another thread's
//! synchronous call would sit in libxl's queue without waking a thread that sleeps in `poll()`
//! on the application fd set; pushed events have no such lost wake-up.
//!
//! The event-loop thread (`run_event_loop`) keeps libxl's file descriptors and timeouts
//! serviced when no other libxl call is running: `libxl_osevent_beforepoll` → `poll` →
//! `libxl_osevent_afterpoll`, plus a wake-up socket so dropping the context stops it at once.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::context::{Context, CtxPtr, Inner};
use crate::error::{Error, Result, Subject, check};
use crate::raw;
use crate::types::{DomId, ShutdownReason};

/// Something that happened to a watched domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainEvent {
    /// The domain shut down (it still exists, in state "shutdown", until destroyed). Reported
    /// once per shutdown; a domain already shut down when the watch starts reports it at once.
    Shutdown {
        /// The domain.
        domid: DomId,
        /// Why.
        reason: ShutdownReason,
    },
    /// The domain is dying or gone: it will never run again and its id is not reused, though
    /// Xen may still list it (state dying) while it frees its memory. A domain destroyed
    /// without shutting down reports only this. The last event of a watch.
    Death {
        /// The domain.
        domid: DomId,
    },
}

impl DomainEvent {
    /// The domain the event is about.
    pub fn domid(&self) -> DomId {
        match *self {
            DomainEvent::Shutdown { domid, .. } | DomainEvent::Death { domid } => domid,
        }
    }
}

/// Routes events from libxl's callback to the channel of the watch they belong to.
#[derive(Debug, Default)]
pub(crate) struct EventRouter {
    next_id: AtomicU64,
    watches: Mutex<HashMap<u64, Sender<DomainEvent>>>,
    /// libxl's "disaster" message, once one happened.
    broken: Mutex<Option<String>>,
}

impl EventRouter {
    fn register(&self, tx: Sender<DomainEvent>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.watches.lock().insert(id, tx);
        id
    }

    fn unregister(&self, id: u64) {
        self.watches.lock().remove(&id);
    }

    /// Whether libxl reported a disaster; its message if so.
    pub(crate) fn broken(&self) -> Option<String> {
        self.broken.lock().clone()
    }

    fn deliver(&self, event: &xen_sys::libxl_event) {
        let domid = DomId::new(event.domid);
        let ours = match event.type_ {
            xen_sys::LIBXL_EVENT_TYPE_DOMAIN_SHUTDOWN => {
                // SAFETY: for DOMAIN_SHUTDOWN events the active union member is domain_shutdown.
                let reason = unsafe { event.u.domain_shutdown.shutdown_reason };
                DomainEvent::Shutdown { domid, reason: ShutdownReason::from_libxl(i32::from(reason)) }
            }
            xen_sys::LIBXL_EVENT_TYPE_DOMAIN_DEATH => DomainEvent::Death { domid },
            other => {
                log::debug!("ignoring libxl event type {other} for domain {domid}");
                return;
            }
        };
        log::debug!("domain event {ours:?} (watch {})", event.for_user);
        match self.watches.lock().get(&event.for_user) {
            // An unbounded send never blocks; a dropped receiver just means nobody listens.
            Some(tx) => {
                let _ = tx.send(ours);
            }
            None => log::debug!("event {ours:?} for a watch already dropped"),
        }
    }
}

/// libxl's `event_occurs` hook: takes ownership of `event`.
///
/// # Safety
/// Only libxl calls it, as registered by `Context::new`: `user` is that context's
/// `EventRouter` (alive as long as the ctx), `event` null or a valid event handed over to us.
pub(crate) unsafe extern "C" fn event_occurs(user: *mut c_void, event: *mut xen_sys::libxl_event) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: user is the EventRouter that Inner keeps alive for the ctx's whole life.
        let router = unsafe { &*user.cast::<EventRouter>() };
        if let Some(ev) = NonNull::new(event) {
            // SAFETY: libxl hands us a valid event we now own.
            router.deliver(unsafe { ev.as_ref() });
        }
    });
    // SAFETY: the event is ours to free (libxl_event.h: "event becomes owned by the
    // application"); libxl_event_free ignores ctx, which may be null.
    unsafe { xen_sys::libxl_event_free(std::ptr::null_mut(), event) };
}

/// libxl's `disaster` hook. Must not call libxl.
///
/// # Safety
/// Only libxl calls it: `user` as for [`event_occurs`], `msg` null or a NUL-terminated string
/// valid for the call.
pub(crate) unsafe extern "C" fn event_disaster(
    user: *mut c_void,
    type_: xen_sys::libxl_event_type,
    msg: *const c_char,
    errnoval: c_int,
) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: as in event_occurs.
        let router = unsafe { &*user.cast::<EventRouter>() };
        // SAFETY: libxl passes a NUL-terminated message valid for the call.
        let msg = unsafe { raw::string_from_c(msg) }.unwrap_or_default();
        let text = if errnoval > 0 { format!("{msg}: {}", std::io::Error::from_raw_os_error(errnoval)) } else { msg };
        log::error!("libxl event disaster (event type {type_}): {text}; domain events may be lost");
        *router.broken.lock() = Some(text);
    });
}

/// A registered libxl domain-death watch; disabling it on drop.
#[derive(Debug)]
pub struct WatchRegistration {
    inner: Arc<Inner>,
    id: u64,
    domid: DomId,
    evgen: NonNull<xen_sys::libxl_evgen_domain_death>,
}

// SAFETY: evgen is only passed back to libxl (thread-safe ctx), once, from Drop.
unsafe impl Send for WatchRegistration {}
// SAFETY: &WatchRegistration exposes only plain data; evgen is not touched through &self.
unsafe impl Sync for WatchRegistration {}

impl WatchRegistration {
    /// The watched domain.
    pub fn domid(&self) -> DomId {
        self.domid
    }
}

impl Drop for WatchRegistration {
    fn drop(&mut self) {
        self.inner.router.unregister(self.id);
        // SAFETY: evgen came from libxl_evenable_domain_death on this ctx (kept alive by
        // self.inner) and is disabled exactly once.
        unsafe { xen_sys::libxl_evdisable_domain_death(self.inner.raw(), self.evgen.as_ptr()) };
    }
}

/// A watch on one domain with its own event channel. Dropping it stops the watch.
#[derive(Debug)]
pub struct DomainWatch {
    registration: WatchRegistration,
    rx: Receiver<DomainEvent>,
}

impl DomainWatch {
    /// The watched domain.
    pub fn domid(&self) -> DomId {
        self.registration.domid
    }

    /// The channel events arrive on, for `crossbeam_channel::select!` over many watches.
    pub fn receiver(&self) -> &Receiver<DomainEvent> {
        &self.rx
    }

    /// Waits for the next event up to `timeout`; `None` if none came.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<DomainEvent> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next event if one is already there.
    pub fn try_recv(&self) -> Option<DomainEvent> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `timeout` for an event matching `want`, dropping the others; `None` on
    /// timeout.
    pub fn wait_for(&self, timeout: Duration, mut want: impl FnMut(&DomainEvent) -> bool) -> Option<DomainEvent> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let ev = self.recv_timeout(left)?;
            if want(&ev) {
                return Some(ev);
            }
        }
    }
}

impl Context {
    /// Starts watching `domid` for shutdown and death, with a channel of its own.
    ///
    /// Events arrive within milliseconds of Xen reporting them, with no polling. A domain that
    /// is already shut down reports that at once; one that does not exist reports death.
    pub fn watch_domain(&self, domid: DomId) -> Result<DomainWatch> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let registration = self.watch_domain_into(domid, tx)?;
        Ok(DomainWatch { registration, rx })
    }

    /// Starts watching `domid`, sending its events into `tx` (so that one thread can receive
    /// the events of many domains on one channel). The watch lasts until the returned
    /// registration is dropped.
    pub fn watch_domain_into(&self, domid: DomId, tx: Sender<DomainEvent>) -> Result<WatchRegistration> {
        if let Some(reason) = self.inner.router.broken() {
            return Err(Error::ContextBroken { reason });
        }
        let id = self.inner.router.register(tx);
        let mut evgen: *mut xen_sys::libxl_evgen_domain_death = std::ptr::null_mut();
        // SAFETY: ctx is live; evgen is a valid out-pointer; id is the for_user value the
        // callback routes by.
        let rc = unsafe { xen_sys::libxl_evenable_domain_death(self.raw(), domid.get(), id, &mut evgen) };
        let registered = check(rc, "watch", || Subject::Domain(domid))
            .and_then(|()| NonNull::new(evgen).ok_or(Error::OutOfMemory { op: "libxl_evenable_domain_death" }));
        match registered {
            Ok(evgen) => {
                // libxl registers its xenstore watch fd here outside any ao, and so does not
                // wake the event-loop thread, which may sit in poll() on the fd set it was
                // given before (a process whose first libxl watch this is: a restarted daemon
                // adopting its domains). Wake it so that it polls the new set.
                self.inner.wake_event_loop();
                Ok(WatchRegistration { inner: Arc::clone(&self.inner), id, domid, evgen })
            }
            Err(err) => {
                self.inner.router.unregister(id);
                Err(err)
            }
        }
    }
}

/// Stops the event-loop thread: a flag and a byte on its wake-up socket.
#[derive(Debug)]
pub(crate) struct EventLoopStop {
    stop: Arc<AtomicBool>,
    wake: UnixStream,
}

impl EventLoopStop {
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Makes the loop ask libxl for its fds and timeouts again. Never blocks: a full socket
    /// means a wake-up is pending anyway.
    pub(crate) fn wake(&mut self) {
        let _ = self.wake.write(&[1]);
    }
}

/// Creates the wake-up pair and returns the stopper and the loop's half.
pub(crate) fn event_loop_channel() -> Result<(EventLoopStop, UnixStream, Arc<AtomicBool>)> {
    let (wake, listen) =
        UnixStream::pair().map_err(|source| Error::Os { op: "create the event loop's wake-up socket", source })?;
    for end in [&listen, &wake] {
        end.set_nonblocking(true)
            .map_err(|source| Error::Os { op: "set up the event loop's wake-up socket", source })?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    Ok((EventLoopStop { stop: Arc::clone(&stop), wake }, listen, stop))
}

fn now() -> xen_sys::timeval {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    xen_sys::timeval {
        tv_sec: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        tv_usec: i64::from(since.subsec_micros()),
    }
}

const EMPTY_POLLFD: libc::pollfd = libc::pollfd { fd: -1, events: 0, revents: 0 };

/// The event-loop thread's body: services libxl's fds and timeouts until stopped.
pub(crate) fn run_event_loop(ctx: CtxPtr, mut listen: UnixStream, stop: Arc<AtomicBool>) {
    // fds[0] is our wake-up socket; libxl's start at fds[1].
    let mut fds: Vec<libc::pollfd> = vec![EMPTY_POLLFD; 16];
    while !stop.load(Ordering::SeqCst) {
        let mut nfds = c_int::try_from(fds.len() - 1).unwrap_or(c_int::MAX);
        let mut timeout: c_int = -1;
        // SAFETY: ctx is live until this thread is joined; fds[1..] has room for nfds pollfds,
        // whose layout is struct pollfd's in both libc and xen_sys.
        let rc = unsafe {
            xen_sys::libxl_osevent_beforepoll(ctx.get(), &mut nfds, fds[1..].as_mut_ptr().cast(), &mut timeout, now())
        };
        if rc == xen_sys::ERROR_BUFFERFULL {
            fds.resize(usize::try_from(nfds).unwrap_or(0) + 1, EMPTY_POLLFD);
            continue;
        }
        if rc != 0 {
            log::error!("libxl_osevent_beforepoll failed ({rc}); retrying in 1 s");
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        fds[0] = libc::pollfd { fd: listen.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let count = usize::try_from(nfds).unwrap_or(0) + 1;
        // SAFETY: fds holds at least `count` initialised pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), count as libc::nfds_t, timeout) };
        if r < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                log::error!("poll in the libxl event loop failed: {err}");
                std::thread::sleep(Duration::from_millis(100));
            }
            continue;
        }
        if fds[0].revents != 0 {
            let mut sink = [0u8; 64];
            while matches!(listen.read(&mut sink), Ok(n) if n > 0) {}
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
        // SAFETY: nfds and fds[1..] are exactly what beforepoll returned, as updated by poll.
        unsafe { xen_sys::libxl_osevent_afterpoll(ctx.get(), nfds, fds[1..].as_ptr().cast(), now()) };
    }
    log::debug!("libxl event loop stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(type_: xen_sys::libxl_event_type, domid: u32, for_user: u64, reason: i32) -> xen_sys::libxl_event {
        // SAFETY: libxl_event is plain C data; zeroed is a valid (empty) value.
        let mut ev: xen_sys::libxl_event = unsafe { std::mem::zeroed() };
        ev.type_ = type_;
        ev.domid = domid;
        ev.for_user = for_user;
        ev.u.domain_shutdown.shutdown_reason = u8::try_from(reason).unwrap();
        ev
    }

    #[test]
    fn router_delivers_to_the_watch_named_in_for_user() {
        let router = EventRouter::default();
        let (tx1, rx1) = crossbeam_channel::unbounded();
        let (tx2, rx2) = crossbeam_channel::unbounded();
        let id1 = router.register(tx1);
        let id2 = router.register(tx2);
        assert_ne!(id1, id2);

        router.deliver(&event(xen_sys::LIBXL_EVENT_TYPE_DOMAIN_SHUTDOWN, 5, id1, xen_sys::LIBXL_SHUTDOWN_REASON_CRASH));
        router.deliver(&event(xen_sys::LIBXL_EVENT_TYPE_DOMAIN_DEATH, 6, id2, 0));
        router.deliver(&event(xen_sys::LIBXL_EVENT_TYPE_DISK_EJECT, 6, id2, 0));
        assert_eq!(rx1.try_recv(), Ok(DomainEvent::Shutdown { domid: DomId::new(5), reason: ShutdownReason::Crash }));
        assert_eq!(rx2.try_recv(), Ok(DomainEvent::Death { domid: DomId::new(6) }));
        assert!(rx1.try_recv().is_err() && rx2.try_recv().is_err());

        router.unregister(id1);
        router.deliver(&event(xen_sys::LIBXL_EVENT_TYPE_DOMAIN_DEATH, 5, id1, 0));
        assert!(rx1.try_recv().is_err());
    }

    #[test]
    fn callbacks_take_ownership_and_record_disasters() {
        let router = EventRouter::default();
        let (tx, rx) = crossbeam_channel::unbounded();
        let id = router.register(tx);
        // The callback frees the event, so hand it one from malloc as libxl would.
        // SAFETY: calloc of one zeroed libxl_event, filled, then owned by event_occurs.
        unsafe {
            let ev = libc::calloc(1, size_of::<xen_sys::libxl_event>()).cast::<xen_sys::libxl_event>();
            assert!(!ev.is_null());
            *ev = event(xen_sys::LIBXL_EVENT_TYPE_DOMAIN_SHUTDOWN, 9, id, xen_sys::LIBXL_SHUTDOWN_REASON_REBOOT);
            event_occurs((&router as *const EventRouter).cast_mut().cast(), ev);
        }
        assert_eq!(rx.try_recv(), Ok(DomainEvent::Shutdown { domid: DomId::new(9), reason: ShutdownReason::Reboot }));

        assert_eq!(router.broken(), None);
        // SAFETY: a valid router pointer and message.
        unsafe { event_disaster((&router as *const EventRouter).cast_mut().cast(), 0, c"watch failed".as_ptr(), 12) };
        let broken = router.broken().unwrap();
        assert!(broken.starts_with("watch failed: "), "{broken}");
    }

    #[test]
    fn event_loop_stops_when_asked() {
        // Without Xen there is no ctx to poll, but the stop path must work before the first
        // libxl call: stop first, then run; it returns at once.
        let (mut stopper, listen, stop) = event_loop_channel().unwrap();
        stopper.stop();
        run_event_loop(CtxPtr::dangling_for_tests(), listen, stop);
    }
}
