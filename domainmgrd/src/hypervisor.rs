//! The daemon's view of the hypervisor: the [`Hypervisor`] trait, and [`LibxlHypervisor`], its
//! implementation over xenctl. [`crate::sim::SimHypervisor`] is the in-memory stand-in the
//! supervisor tests and benchmarks use.
//!
//! The trait speaks xenctl's plain data types (`DomainSpec`, `DomId`, `DomainInfo`,
//! `DomainEvent`) and error type, so both implementations report failures the same way.

use crossbeam_channel::Sender;
use xenctl::{Bdf, Context, DomId, DomainEvent, DomainInfo, DomainSpec, HostCpus, HostInfo};

/// Results of hypervisor calls.
pub type HvResult<T> = Result<T, xenctl::Error>;

/// Keeps a domain's event watch alive; dropping it stops the watch.
pub trait WatchGuard: Send {}

impl<T: Send> WatchGuard for T {}

/// A save in progress ([`Hypervisor::begin_save`]). It ends one of two ways: the image is
/// complete and synced in its file and the domain is suspended (the caller puts the image in
/// place and destroys the domain, or throws the image away and resumes it), or the save failed
/// or was aborted, its file is gone and the guest runs again.
pub trait SaveInProgress: Send {
    /// Waits until `deadline` for the end; `None` if it has not ended by then.
    fn wait_until(&mut self, deadline: std::time::Instant) -> Option<HvResult<()>>;
    /// Asks for the save to be cut short; it may still complete. `wait_until` tells.
    fn abort(&self);
    /// Waits for the end, however long the save takes.
    fn wait(&mut self) -> HvResult<()> {
        loop {
            let far = std::time::Instant::now() + std::time::Duration::from_secs(3600);
            if let Some(end) = self.wait_until(far) {
                return end;
            }
        }
    }
}

impl SaveInProgress for xenctl::SaveJob {
    fn wait_until(&mut self, deadline: std::time::Instant) -> Option<HvResult<()>> {
        xenctl::SaveJob::wait_until(self, deadline)
    }
    fn abort(&self) {
        xenctl::SaveJob::abort(self)
    }
}

/// A domain [`Hypervisor::migrate_receive`] received: running here, under its own name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Its domid here.
    pub domid: DomId,
    /// The config that came with it (libxl JSON).
    pub config_json: String,
    /// Whether the sender heard that it runs here (else its copy waits there, in doubt).
    pub sender_notified: bool,
}

/// How [`Hypervisor::migrate_receive`] asks its caller about the domain that is coming, from
/// the config that came with it (libxl JSON): `Err` refuses it, `Some(spec)` configures it
/// instead of that config, `None` takes it as it came.
pub type Choose<'a> = &'a mut dyn FnMut(&str) -> HvResult<Option<DomainSpec>>;

/// What the daemon needs from a hypervisor. Every method may be called from any thread.
pub trait Hypervisor: Send + Sync + 'static {
    /// Creates the domain, paused.
    fn create_paused(&self, spec: &DomainSpec) -> HvResult<DomId>;
    /// Lets a paused domain run.
    fn unpause(&self, domid: DomId) -> HvResult<()>;
    /// Turns off the offload features of the domain's first `vif_count` vifs (before unpause).
    fn disable_vif_offload(&self, domid: DomId, vif_count: usize) -> HvResult<()>;
    /// The dom0 names of the domain's first `vif_count` vifs.
    fn vif_names(&self, domid: DomId, vif_count: usize) -> HvResult<Vec<String>>;
    /// Sets one of the SMBIOS strings an HVM guest's firmware reads at its start
    /// (`/local/domain/<domid>/bios-strings/<key>` in xenstore), before unpause.
    fn set_bios_string(&self, domid: DomId, key: &str, value: &str) -> HvResult<()>;
    /// Asks the guest to shut down (`Error::NoPvDrivers` if it cannot be asked).
    fn shutdown(&self, domid: DomId) -> HvResult<()>;
    /// Presses the ACPI power button.
    fn power_button(&self, domid: DomId) -> HvResult<()>;
    /// Destroys the domain.
    fn destroy(&self, domid: DomId) -> HvResult<()>;
    /// The domain's state, or `None` if it does not exist.
    fn info(&self, domid: DomId) -> HvResult<Option<DomainInfo>>;
    /// All domains (names included).
    fn list(&self) -> HvResult<Vec<DomainInfo>>;
    /// All domains without names: one hypervisor call, for metrics.
    fn sample(&self) -> HvResult<Vec<DomainInfo>>;
    /// The host's CPUs and memory.
    fn host_info(&self) -> HvResult<HostInfo>;
    /// The host's CPU slots and NUMA nodes, as xl's CPU lists see them.
    fn host_cpus(&self) -> HvResult<HostCpus>;
    /// Binds a host PCI device to pciback (assignable to guests).
    fn pci_assignable_add(&self, bdf: Bdf) -> HvResult<()>;
    /// Takes a device back from pciback, rebinding its dom0 driver if `rebind`.
    fn pci_assignable_remove(&self, bdf: Bdf, rebind: bool) -> HvResult<()>;
    /// The devices bound to pciback.
    fn pci_assignable_list(&self) -> HvResult<Vec<Bdf>>;
    /// Starts saving the domain to `partial` (xl's image format), in the background; the file
    /// is created exclusively. See [`SaveInProgress`] for how it ends.
    fn begin_save(&self, domid: DomId, partial: &std::path::Path) -> HvResult<Box<dyn SaveInProgress>>;
    /// Lets a domain that a save suspended run again, as if the save had not happened.
    fn resume(&self, domid: DomId) -> HvResult<()>;
    /// Restores the image at `path` as a new domain configured by `spec`, paused.
    fn restore_paused(&self, spec: &DomainSpec, path: &std::path::Path) -> HvResult<DomId>;
    /// Sends the running domain to the receiver at the other end of `stream`, in xl's
    /// migration protocol, live (pre-copy) or stopped and copied; see
    /// [`xenctl::Context::migrate_send`] for what each outcome leaves here. Blocks for the whole
    /// transfer; closing the peer's end cuts it short.
    fn migrate_send(
        &self,
        domid: DomId,
        live: bool,
        stream: xenctl::MigrationStream,
    ) -> HvResult<xenctl::MigrateOutcome>;
    /// Receives a domain from the sender at the other end of `stream`: `choose` decides its
    /// config, `prepare` runs on the paused copy before the sender hears it arrived; it runs
    /// under its own name when this returns. On `Err` no copy is left here.
    fn migrate_receive(
        &self,
        stream: xenctl::MigrationStream,
        choose: Choose<'_>,
        prepare: &mut dyn FnMut(DomId) -> HvResult<()>,
    ) -> HvResult<Received>;
    /// Sends a SysRq key to the guest kernel.
    fn sysrq(&self, domid: DomId, key: char) -> HvResult<()>;
    /// The dom0 tty of the domain's console.
    fn console_tty(&self, domid: DomId) -> HvResult<std::path::PathBuf>;
    /// Sends the domain's shutdown and death events to `events` until the guard is dropped.
    fn watch(&self, domid: DomId, events: Sender<DomainEvent>) -> HvResult<Box<dyn WatchGuard>>;
    /// A key of the guest's own xenstore directory (`/local/domain/<domid>/<key>`), which the
    /// guest may write: untrusted. `None` if there is none.
    fn guest_key(&self, _domid: DomId, _key: &str) -> HvResult<Option<String>> {
        Ok(None)
    }
    /// Declares the daemon's no-op device script (native.rs): save images leave it out of
    /// their config, so another toolstack restores them with its default scripts.
    fn set_private_script(&self, _script: &std::path::Path) {}
}

/// The real hypervisor, through libxl.
///
/// Creates, restores and destroys run on a pool of independent libxl contexts (by default up
/// to [`LibxlHypervisor::WORKERS`], opened as they are first needed): libxl does all of one ctx's
/// work under one lock, domain builds and device waits included, so on the shared context two
/// creates would take turns. Everything else, quick calls and watches, uses the shared one.
/// (Saves stay there too: libxl's save helper process does their work, and the ctx lock is
/// free while it runs.)
#[derive(Debug, Clone)]
pub struct LibxlHypervisor {
    ctx: Context,
    workers: std::sync::Arc<Workers>,
}

/// The pool of independent contexts: the idle ones, how many were opened, and how many may be.
#[derive(Debug, Default)]
struct Workers {
    idle: parking_lot::Mutex<(Vec<Context>, usize)>,
    freed: parking_lot::Condvar,
    max: usize,
}

impl LibxlHypervisor {
    /// How many creates, restores and destroys run at once at most, by default. As many as
    /// a host boot's worth of `xl create` processes would: with 4, eight creates at once ran as
    /// two waves, and the second built its domains while the first wave's guests booted and
    /// took the CPUs (17-20 s against 3-4 s in the box). A context is a few descriptors.
    pub const WORKERS: usize = 16;

    /// Opens the process's libxl context, with [`Self::WORKERS`] worker contexts.
    pub fn open() -> HvResult<LibxlHypervisor> {
        Self::open_with(Self::WORKERS)
    }

    /// Opens the process's libxl context, with up to `workers` worker contexts (0: every
    /// operation on the shared context).
    pub fn open_with(workers: usize) -> HvResult<LibxlHypervisor> {
        let workers = Workers { max: workers, ..Workers::default() };
        Ok(LibxlHypervisor { ctx: Context::new()?, workers: std::sync::Arc::new(workers) })
    }

    /// Runs `op` on an idle worker context (opening one if fewer than the pool's size are
    /// open, else waiting for one); on the shared context if the pool has none, or another
    /// context cannot be opened.
    fn on_worker<T>(&self, op: impl FnOnce(&Context) -> HvResult<T>) -> HvResult<T> {
        if self.workers.max == 0 {
            return op(&self.ctx);
        }
        let ctx = {
            let mut idle = self.workers.idle.lock();
            loop {
                if let Some(ctx) = idle.0.pop() {
                    break Some(ctx);
                }
                if idle.1 < self.workers.max {
                    idle.1 += 1;
                    break None;
                }
                self.workers.freed.wait(&mut idle);
            }
        };
        let ctx = match ctx {
            Some(ctx) => ctx,
            None => match Context::new_independent() {
                Ok(ctx) => ctx,
                Err(e) => {
                    log::warn!("cannot open another libxl context ({e}); using the shared one");
                    self.workers.idle.lock().1 -= 1;
                    self.workers.freed.notify_one();
                    return op(&self.ctx);
                }
            },
        };
        let result = op(&ctx);
        self.workers.idle.lock().0.push(ctx);
        self.workers.freed.notify_one();
        result
    }

    /// The libxl context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }
}

fn not_found_is_none<T>(r: HvResult<T>) -> HvResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(xenctl::Error::DomainNotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Hypervisor for LibxlHypervisor {
    fn create_paused(&self, spec: &DomainSpec) -> HvResult<DomId> {
        self.on_worker(|ctx| ctx.create_paused(spec))
    }
    fn unpause(&self, domid: DomId) -> HvResult<()> {
        self.ctx.unpause(domid)
    }
    fn disable_vif_offload(&self, domid: DomId, vif_count: usize) -> HvResult<()> {
        self.ctx.xenstore().disable_vif_offload(domid, vif_count)
    }
    fn vif_names(&self, domid: DomId, vif_count: usize) -> HvResult<Vec<String>> {
        (0..vif_count)
            .map(|n| {
                // libxl records a name only when one was asked for; otherwise it is vif<domid>.<n>.
                let path = format!("{}/vifname", xenctl::vif_backend_path(domid, n));
                Ok(self.ctx.xenstore().read_opt(&path)?.unwrap_or_else(|| format!("vif{domid}.{n}")))
            })
            .collect()
    }
    fn set_bios_string(&self, domid: DomId, key: &str, value: &str) -> HvResult<()> {
        self.ctx.xenstore().write(&format!("/local/domain/{}/bios-strings/{key}", domid.get()), value)
    }
    fn shutdown(&self, domid: DomId) -> HvResult<()> {
        self.ctx.shutdown(domid)
    }
    fn guest_key(&self, domid: DomId, key: &str) -> HvResult<Option<String>> {
        self.ctx.xenstore().read_opt(&format!("/local/domain/{}/{key}", domid.get()))
    }
    fn power_button(&self, domid: DomId) -> HvResult<()> {
        self.ctx.power_button(domid)
    }
    fn destroy(&self, domid: DomId) -> HvResult<()> {
        self.on_worker(|ctx| ctx.destroy(domid))
    }
    fn info(&self, domid: DomId) -> HvResult<Option<DomainInfo>> {
        not_found_is_none(self.ctx.info(domid))
    }
    fn list(&self) -> HvResult<Vec<DomainInfo>> {
        self.ctx.list()
    }
    fn sample(&self) -> HvResult<Vec<DomainInfo>> {
        self.ctx.list_without_names()
    }
    fn host_info(&self) -> HvResult<HostInfo> {
        self.ctx.host_info()
    }
    fn host_cpus(&self) -> HvResult<HostCpus> {
        self.ctx.host_cpus()
    }
    fn pci_assignable_add(&self, bdf: Bdf) -> HvResult<()> {
        self.ctx.pci_assignable_add(bdf)
    }
    fn begin_save(&self, domid: DomId, partial: &std::path::Path) -> HvResult<Box<dyn SaveInProgress>> {
        Ok(Box::new(self.ctx.begin_save(domid, partial)?))
    }
    fn resume(&self, domid: DomId) -> HvResult<()> {
        self.ctx.resume(domid)
    }
    fn restore_paused(&self, spec: &DomainSpec, path: &std::path::Path) -> HvResult<DomId> {
        self.on_worker(|ctx| ctx.restore_paused(spec, path))
    }
    fn sysrq(&self, domid: DomId, key: char) -> HvResult<()> {
        self.ctx.sysrq(domid, key)
    }
    fn migrate_send(
        &self,
        domid: DomId,
        live: bool,
        stream: xenctl::MigrationStream,
    ) -> HvResult<xenctl::MigrateOutcome> {
        // On the shared context, as saves: libxl's save helper does the work.
        self.ctx.migrate_send(domid, live, stream)
    }
    fn migrate_receive(
        &self,
        stream: xenctl::MigrationStream,
        choose: Choose<'_>,
        prepare: &mut dyn FnMut(DomId) -> HvResult<()>,
    ) -> HvResult<Received> {
        // A restore holds its context for the whole transfer: a worker's.
        let r = self.on_worker(|ctx| ctx.migrate_receive(stream, choose, prepare))?;
        Ok(Received { domid: r.domid, config_json: r.config_json, sender_notified: r.sender_notified })
    }
    fn console_tty(&self, domid: DomId) -> HvResult<std::path::PathBuf> {
        self.ctx.console_tty(domid)
    }
    fn pci_assignable_remove(&self, bdf: Bdf, rebind: bool) -> HvResult<()> {
        self.ctx.pci_assignable_remove(bdf, rebind)
    }
    fn pci_assignable_list(&self) -> HvResult<Vec<Bdf>> {
        self.ctx.pci_assignable_list()
    }
    fn watch(&self, domid: DomId, events: Sender<DomainEvent>) -> HvResult<Box<dyn WatchGuard>> {
        Ok(Box::new(self.ctx.watch_domain_into(domid, events)?))
    }
    fn set_private_script(&self, script: &std::path::Path) {
        self.ctx.set_private_script(script);
    }
}
