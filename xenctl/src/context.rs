//! [`Context`]: the process's libxl context, shared by all threads (and, for work that must run
//! beside it, independent ones).
//!
//! Opening it checks, in order, that Xen runs and this is dom0, that the loaded libxenlight is
//! the Xen version our bindings were generated for, then allocates the libxl ctx with a logger
//! feeding the `log` crate, and checks the hypervisor's version too.
//!
//! # SIGCHLD
//! libxl forks children (hotplug scripts, bootloaders, device models) and must learn when they
//! exit. We use `libxl_sigchld_owner_mainloop`: libxl installs no signal handler; a thread of
//! ours receives SIGCHLD (through signal-hook's self-pipe handler) and calls
//! `libxl_childproc_sigchld_occurred`, which reaps only libxl's own children. Why this mode:
//! the default (`libxl_sigchld_owner_libxl`) makes libxl reap *every* child while it has one,
//! which would steal the exit status of programs the application runs itself (modprobe, copy
//! tools) through `std::process`; the mainloop mode never does, nothing here ever calls
//! `waitpid(-1)`, and `std::process::Child::wait` keeps working.
//!
//! # Threads
//! Two background threads live as long as the context: the SIGCHLD forwarder and the libxl
//! event loop (see `events.rs`). Dropping the last [`Context`] clone (and every watch, which
//! holds a clone) stops and joins both, then frees the libxl ctx.

use std::path::Path;
use std::ptr::NonNull;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::error::{Error, Result, Subject, check};
use crate::events::{self, EventLoopStop, EventRouter};
use crate::logger::Logger;
use crate::raw;
use crate::xenstore::Xenstore;

/// The `libxl_ctx` pointer, as [`Inner`] owns it and as the event-loop and SIGCHLD threads
/// borrow it. The only piece of `Inner` whose thread-safety the compiler cannot see: the other
/// fields are checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CtxPtr(NonNull<xen_sys::libxl_ctx>);

// SAFETY: libxl's ctx is thread-safe (libxl.h, "libxl memory management": a `libxl_ctx*` may be
// used by several threads at once; every call takes it by pointer and locks inside libxl).
// Inner frees it only once no thread uses it: the threads holding a copy are joined first
// (see Drop).
unsafe impl Send for CtxPtr {}
// SAFETY: as above.
unsafe impl Sync for CtxPtr {}

impl CtxPtr {
    /// The pointer, for a libxl call.
    pub(crate) fn get(self) -> *mut xen_sys::libxl_ctx {
        self.0.as_ptr()
    }

    /// A pointer to no ctx, for a test that stops the event loop before its first libxl call.
    #[cfg(test)]
    pub(crate) fn dangling_for_tests() -> CtxPtr {
        CtxPtr(NonNull::dangling())
    }
}

/// Xen version facts found while opening the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XenVersions {
    /// The vendored headers' Xen version, e.g. `4.17.7`.
    pub headers: String,
    /// The loaded libxenlight's version from its file name, e.g. `4.17.0`.
    pub library: String,
    /// The hypervisor's version, e.g. `4.17.7`.
    pub hypervisor: String,
}

/// A handle on the process's libxl context. Cheap to clone; all clones share one context.
///
/// [`Context::new`] returns the process's shared context (the existing one while one is alive);
/// [`Context::new_independent`] opens another, for work that must not wait for the shared one. Every method takes `&self` and may be called from any thread.
#[derive(Clone, Debug)]
pub struct Context {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    ctx: CtxPtr,
    pub(crate) router: Arc<EventRouter>,
    // libxl keeps pointers to both hook structs ("not copied and must outlast the ctx").
    _event_hooks: Box<xen_sys::libxl_event_hooks>,
    _childproc_hooks: Box<xen_sys::libxl_childproc_hooks>,
    event_loop: Mutex<Option<(EventLoopStop, JoinHandle<()>)>>,
    sigchld: Mutex<Option<(signal_hook::iterator::Handle, JoinHandle<()>)>>,
    pub(crate) xenstore: Xenstore,
    /// Device scripts this process gives libxl that mean nothing outside it (see
    /// [`Context::set_private_script`]).
    pub(crate) private_scripts: Mutex<Vec<String>>,
    versions: XenVersions,
    // Dropped after the ctx (see Drop): the ctx logs through it until freed.
    logger: Option<Logger>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("versions", &self.versions).finish_non_exhaustive()
    }
}

static PROCESS_CONTEXT: Mutex<Weak<Inner>> = Mutex::new(Weak::new());

impl Context {
    /// Opens (or joins) the process's libxl context.
    ///
    /// Fails with [`Error::XenNotRunning`] or [`Error::NotDom0`] on the wrong machine, and with
    /// [`Error::VersionMismatch`] when the libxenlight loaded, or the hypervisor, is not of the
    /// Xen release in `vendor-headers/VERSION` (4.17).
    ///
    /// "The same version" means the same release line, major.minor: libxl keeps its ABI (and
    /// libxenlight its soname, `libxenlight.so.4.17`) within one, and the library carries no finer
    /// version than its file name (`.so.4.17.0`), so a 4.17.x library with 4.17.y headers is the
    /// match libxl itself promises. The versions found are in [`Context::versions`].
    pub fn new() -> Result<Context> {
        let mut slot = PROCESS_CONTEXT.lock();
        if let Some(inner) = slot.upgrade() {
            return Ok(Context { inner });
        }
        check_xen_present(Path::new("/"))?;
        let library = check_library_version()?;
        let inner = Arc::new(Inner::new(library)?);
        *slot = Arc::downgrade(&inner);
        Ok(Context { inner })
    }

    /// A context of its own, beside the process's shared one ([`Context::new`]), with its own
    /// event thread and SIGCHLD forwarder. libxl does a ctx's work under that ctx's one lock
    /// (a domain build, its forks and waits included), so operations on one ctx take turns; a
    /// tool that creates, restores or destroys several domains at once gives each its own
    /// context. libxl allows several ctxs in `libxl_sigchld_owner_mainloop` mode, each told of
    /// every SIGCHLD (each reaps only its own children).
    pub fn new_independent() -> Result<Context> {
        check_xen_present(Path::new("/"))?;
        let library = check_library_version()?;
        Ok(Context { inner: Arc::new(Inner::new(library)?) })
    }

    /// Declares `script` a device script private to this process (a no-op standing for work the
    /// process does itself): the config in a save image leaves it out, so the device gets the
    /// default script when `xl restore` (or any other toolstack) restores the image.
    pub fn set_private_script(&self, script: &Path) {
        let script = script.display().to_string();
        let mut scripts = self.inner.private_scripts.lock();
        if !scripts.contains(&script) {
            scripts.push(script);
        }
    }

    /// The raw `libxl_ctx *`, for callers who need a libxl function this crate does not wrap.
    ///
    /// It stays valid while any clone of this `Context` is alive. Do not free it, do not change
    /// its child-process mode or event hooks.
    pub fn raw(&self) -> *mut xen_sys::libxl_ctx {
        self.inner.raw()
    }

    /// The Xen versions checked at open.
    pub fn versions(&self) -> &XenVersions {
        &self.inner.versions
    }

    /// The xenstore connection this context uses.
    pub fn xenstore(&self) -> &Xenstore {
        &self.inner.xenstore
    }

    /// `Err` if libxl reported an unrecoverable event-handling failure; the context should then
    /// be dropped and opened again.
    pub fn health(&self) -> Result<()> {
        match self.inner.router.broken() {
            Some(reason) => Err(Error::ContextBroken { reason }),
            None => Ok(()),
        }
    }
}

impl Inner {
    pub(crate) fn raw(&self) -> *mut xen_sys::libxl_ctx {
        self.ctx.get()
    }

    fn new(library: String) -> Result<Inner> {
        let logger = Logger::new()?;
        let mut ctx: *mut xen_sys::libxl_ctx = std::ptr::null_mut();
        // SAFETY: ctx is a valid out-pointer; the logger outlives the ctx (Inner frees the ctx
        // first, in Drop).
        let rc = unsafe { xen_sys::libxl_ctx_alloc(&mut ctx, xen_sys::LIBXL_VERSION as i32, 0, logger.as_ptr()) };
        check(rc, "open libxl context", || Subject::Host)?;
        let Some(ctx) = NonNull::new(ctx) else {
            return Err(Error::OutOfMemory { op: "libxl_ctx_alloc" });
        };
        // From here on a failure must free ctx: build Inner at once so Drop does it.
        let router = Arc::new(EventRouter::default());
        let childproc_hooks = Box::new(xen_sys::libxl_childproc_hooks {
            chldowner: xen_sys::libxl_sigchld_owner_mainloop,
            fork_replacement: None,
            reaped_callback: None,
        });
        let event_hooks = Box::new(xen_sys::libxl_event_hooks {
            event_occurs_mask: u64::MAX,
            event_occurs: Some(events::event_occurs),
            disaster: Some(events::event_disaster),
        });
        let mut inner = Inner {
            ctx: CtxPtr(ctx),
            router,
            _event_hooks: event_hooks,
            _childproc_hooks: childproc_hooks,
            event_loop: Mutex::new(None),
            sigchld: Mutex::new(None),
            xenstore: Xenstore::new(),
            private_scripts: Mutex::new(Vec::new()),
            versions: XenVersions {
                headers: xen_sys::VENDORED_XEN_VERSION.to_string(),
                library,
                hypervisor: String::new(),
            },
            logger: Some(logger),
        };
        // SAFETY: a fresh ctx with no children yet (setmode's precondition); the hooks are boxed
        // in Inner and so outlive the ctx.
        unsafe { xen_sys::libxl_childproc_setmode(inner.raw(), &*inner._childproc_hooks, std::ptr::null_mut()) };
        // SAFETY: no event generation is enabled yet (register_callbacks' precondition); the
        // router pointer stays valid while Inner (which owns an Arc to it) lives.
        unsafe {
            xen_sys::libxl_event_register_callbacks(
                inner.raw(),
                &*inner._event_hooks,
                Arc::as_ptr(&inner.router).cast_mut().cast(),
            )
        };
        inner.start_sigchld_forwarder()?;
        inner.start_event_loop()?;
        inner.versions.hypervisor = inner.check_hypervisor_version()?;
        log::debug!("libxl context open: {:?}", inner.versions);
        Ok(inner)
    }

    fn start_sigchld_forwarder(&mut self) -> Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGCHLD])
            .map_err(|source| Error::Os { op: "install the SIGCHLD handler", source })?;
        let handle = signals.handle();
        let ctx = self.ctx;
        let thread = std::thread::Builder::new()
            .name("libxl-sigchld".into())
            .spawn(move || {
                let ctx = ctx;
                for _ in signals.forever() {
                    // SAFETY: ctx is live until this thread is joined; not called from a signal
                    // handler (signal-hook's handler only writes to a pipe).
                    unsafe { xen_sys::libxl_childproc_sigchld_occurred(ctx.get()) };
                }
            })
            .map_err(|source| Error::Os { op: "start the SIGCHLD thread", source })?;
        *self.sigchld.lock() = Some((handle, thread));
        Ok(())
    }

    /// Wakes the event-loop thread so it polls libxl's current fd set (see `watch_domain_into`).
    pub(crate) fn wake_event_loop(&self) {
        if let Some((stopper, _)) = self.event_loop.lock().as_mut() {
            stopper.wake();
        }
    }

    fn start_event_loop(&mut self) -> Result<()> {
        let (stopper, listen, stop) = events::event_loop_channel()?;
        let ctx = self.ctx;
        let thread = std::thread::Builder::new()
            .name("libxl-events".into())
            .spawn(move || events::run_event_loop(ctx, listen, stop))
            .map_err(|source| Error::Os { op: "start the libxl event thread", source })?;
        *self.event_loop.lock() = Some((stopper, thread));
        Ok(())
    }

    /// The hypervisor's version ("4.17.7"), refused unless its major.minor is the headers'.
    fn check_hypervisor_version(&self) -> Result<String> {
        // SAFETY: ctx is live; the returned struct is cached inside the ctx (not ours to free).
        let info = unsafe { xen_sys::libxl_get_version_info(self.raw()) };
        // SAFETY: non-null results point to the ctx's cached, initialised version info.
        let Some(info) = (unsafe { info.as_ref() }) else {
            return Err(Error::Libxl {
                op: "read the hypervisor version",
                subject: Subject::Host,
                code: crate::error::LibxlErrorCode::ERROR_FAIL,
            });
        };
        // SAFETY: xen_version_extra is null or a string owned by the cached info.
        let extra = unsafe { raw::string_from_c(info.xen_version_extra) }.unwrap_or_default();
        let found = format!("{}.{}{}", info.xen_version_major, info.xen_version_minor, extra);
        let expected = xen_sys::VENDORED_XEN_VERSION;
        if major_minor(&found) != major_minor(expected) {
            return Err(Error::VersionMismatch { component: "the hypervisor", found, expected: expected.into() });
        }
        Ok(found)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some((mut stopper, thread)) = self.event_loop.lock().take() {
            stopper.stop();
            let _ = thread.join();
        }
        if let Some((handle, thread)) = self.sigchld.lock().take() {
            handle.close();
            let _ = thread.join();
        }
        // SAFETY: both threads using the ctx are joined, every watch (each holds an Arc<Inner>)
        // is gone, so nothing else uses the ctx; it is freed exactly once.
        unsafe { xen_sys::libxl_ctx_free(self.raw()) };
        drop(self.logger.take());
    }
}

/// "4.17.7-pre" → "4.17".
fn major_minor(version: &str) -> String {
    version.split('.').take(2).map(|p| p.trim_end_matches(|c: char| !c.is_ascii_digit())).collect::<Vec<_>>().join(".")
}

/// Checks `root`'s /sys and /proc for a Xen dom0. `root` is `/` except in tests.
pub(crate) fn check_xen_present(root: &Path) -> Result<()> {
    let hv_type = root.join("sys/hypervisor/type");
    match std::fs::read_to_string(&hv_type) {
        Ok(t) if t.trim() == "xen" => {}
        Ok(t) => {
            return Err(Error::XenNotRunning { reason: format!("{} says {:?}", hv_type.display(), t.trim()) });
        }
        Err(_) => {
            return Err(Error::XenNotRunning { reason: format!("no {}", hv_type.display()) });
        }
    }
    let caps = root.join("proc/xen/capabilities");
    match std::fs::read_to_string(&caps) {
        Ok(c) if c.contains("control_d") => Ok(()),
        Ok(_) => Err(Error::NotDom0 { reason: format!("{} lacks control_d", caps.display()) }),
        // xenfs may not be mounted; the privcmd device is what libxl needs.
        Err(_) if root.join("dev/xen/privcmd").exists() => Ok(()),
        Err(_) => Err(Error::NotDom0 {
            reason: format!("neither {} nor {} exists", caps.display(), root.join("dev/xen/privcmd").display()),
        }),
    }
}

/// The loaded libxenlight's version (from its file name, e.g. libxenlight.so.4.17.0), refused
/// unless its major.minor is the vendored headers'.
fn check_library_version() -> Result<String> {
    let found = loaded_library_version().ok_or_else(|| Error::VersionMismatch {
        component: "libxenlight",
        found: "unknown (cannot tell which libxenlight.so is loaded)".into(),
        expected: xen_sys::VENDORED_XEN_VERSION.into(),
    })?;
    let expected = xen_sys::VENDORED_XEN_VERSION;
    if major_minor(&found) != major_minor(expected) {
        return Err(Error::VersionMismatch { component: "libxenlight", found, expected: expected.into() });
    }
    Ok(found)
}

fn loaded_library_version() -> Option<String> {
    // SAFETY: Dl_info is plain C data; zeroed is valid.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let symbol = xen_sys::libxl_ctx_alloc as *const libc::c_void;
    // SAFETY: symbol is the address of a function in libxenlight; info is a valid out-pointer.
    if unsafe { libc::dladdr(symbol, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr returned a NUL-terminated path owned by the dynamic linker.
    let path = unsafe { raw::string_from_c(info.dli_fname) }?;
    let resolved = std::fs::canonicalize(&path).unwrap_or_else(|_| path.into());
    library_version_from_name(resolved.file_name()?.to_str()?)
}

/// "libxenlight.so.4.17.0" → "4.17.0".
fn library_version_from_name(name: &str) -> Option<String> {
    let version = name.strip_prefix("libxenlight.so.")?;
    let ok = !version.is_empty() && version.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fake_root(hv: Option<&str>, caps: Option<&str>, privcmd: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(hv) = hv {
            fs::create_dir_all(dir.path().join("sys/hypervisor")).unwrap();
            fs::write(dir.path().join("sys/hypervisor/type"), hv).unwrap();
        }
        if let Some(caps) = caps {
            fs::create_dir_all(dir.path().join("proc/xen")).unwrap();
            fs::write(dir.path().join("proc/xen/capabilities"), caps).unwrap();
        }
        if privcmd {
            fs::create_dir_all(dir.path().join("dev/xen")).unwrap();
            fs::write(dir.path().join("dev/xen/privcmd"), "").unwrap();
        }
        dir
    }

    #[test]
    fn detects_no_xen_other_hypervisors_domu_and_dom0() {
        let r = fake_root(None, None, false);
        let err = check_xen_present(r.path()).unwrap_err();
        assert!(matches!(err, Error::XenNotRunning { .. }));
        assert!(err.to_string().starts_with("Xen is not running on this machine (no "), "{err}");

        let r = fake_root(Some("kvm\n"), None, false);
        assert!(check_xen_present(r.path()).unwrap_err().to_string().contains("says \"kvm\""));

        let r = fake_root(Some("xen\n"), Some(""), false);
        assert!(matches!(check_xen_present(r.path()), Err(Error::NotDom0 { .. })));
        let r = fake_root(Some("xen\n"), None, false);
        assert!(matches!(check_xen_present(r.path()), Err(Error::NotDom0 { .. })));

        let r = fake_root(Some("xen\n"), Some("control_d\n"), false);
        assert!(check_xen_present(r.path()).is_ok());
        let r = fake_root(Some("xen\n"), None, true);
        assert!(check_xen_present(r.path()).is_ok());
    }

    #[test]
    fn versions_compare_by_major_minor() {
        assert_eq!(major_minor("4.17.7"), "4.17");
        assert_eq!(major_minor("4.17.7-pre"), "4.17");
        assert_eq!(major_minor("4.17-rc"), "4.17");
        assert_eq!(library_version_from_name("libxenlight.so.4.17.0").as_deref(), Some("4.17.0"));
        assert_eq!(library_version_from_name("libxenlight.so"), None);
        assert_eq!(library_version_from_name("libxenlight.so.4.x"), None);
    }

    #[test]
    fn the_loaded_library_is_the_vendored_version() {
        // This test binary links the system's libxenlight; it must be the headers' version.
        let found = loaded_library_version().expect("dladdr finds libxenlight");
        assert_eq!(major_minor(&found), major_minor(xen_sys::VENDORED_XEN_VERSION), "{found}");
        assert!(check_library_version().is_ok());
    }

    /// On a machine without Xen (the CI host, a developer laptop) opening fails with the clear
    /// error, not a panic; on dom0 it opens.
    #[test]
    fn open_on_this_machine() {
        match check_xen_present(Path::new("/")) {
            Err(expected) => {
                let err = Context::new().unwrap_err();
                assert_eq!(err.to_string(), expected.to_string());
                assert!(matches!(err, Error::XenNotRunning { .. } | Error::NotDom0 { .. }));
            }
            Ok(()) => {
                let ctx = Context::new().unwrap();
                assert_eq!(major_minor(&ctx.versions().hypervisor), major_minor(xen_sys::VENDORED_XEN_VERSION));
            }
        }
    }
}
