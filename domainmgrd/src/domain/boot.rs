//! Booting a domain: reserve its adapters, write the xl config it asks libxl for, record the
//! fresh run and the create in progress (the `creating` record a later daemon finds if this
//! one dies mid-create), create it paused, disable vif offloads, read the vif names, unpause;
//! and on any failure, undo what was done and retry after `timer.boot.retry`.

use std::time::{Duration, Instant};

use chrono::Utc;

use xenctl::{DomId, DomainSpec};

use super::{Domain, Phase, Retry};
use crate::eve::{ErrorDescription, VifInfo};
use crate::records::Step;

/// How often a domain waiting for its adapters looks again.
const ADAPTERS_RECHECK: Duration = Duration::from_secs(2);

impl Domain {
    pub(super) fn boot(&mut self) {
        let Some(Ok(translated)) = self.desired.as_ref().map(|d| d.translated.clone()) else {
            return;
        };
        let wanted = self.desired.as_ref().map(|d| d.config.io_adapter_list.clone()).unwrap_or_default();
        // A guest's own reboot gets again the devices its adapters resolved to (EVE's xl
        // restarts it without looking at them again), unless its config now names others.
        let rebooting = self.rebooting;
        let keep = rebooting && !self.held_adapters.is_empty() && self.status.io_adapter_list == wanted;
        if rebooting && !keep {
            self.release_adapters();
        }
        if !wanted.is_empty() && !keep {
            let waiting = self.shared.adapters.lock().waiting_for();
            if let Some(why) = waiting {
                self.rebooting = false;
                return self.wait_for_adapters(&wanted, why);
            }
        }
        let mut spec = translated.spec;
        let name = self.name();
        self.retry = Retry::Now;
        // A reboot is not another try: it is the same run.
        if !rebooting {
            self.status.tried_count += 1;
        }
        self.phase = Phase::Booting;
        self.status.domain_name = spec.name.clone();
        self.status.disk_status_list = translated.disks;
        self.status.boot_note = translated.boot_note.unwrap_or_default();
        self.status.exit_status = None;
        self.status.oci_config_dir = String::new();
        self.status.env_variables = None;
        // A container app: its run spec into its volume (its user data gives variables, no
        // config disk), its kernel and initramfs.
        if let Some(volume) = &translated.container_volume {
            if let Err(e) = self.prepare_container(volume, &mut spec) {
                self.publish();
                return self.boot_failed(e);
            }
        } else if self.source == super::Source::Eve {
            // EVE apps' cloud-init config disk, from the config as it is now: after their disks.
            let disk = self.cloud_init_disk().map_err(|e| e.to_string()).and_then(|path| {
                let Some(path) = path else { return Ok(None) };
                let disk = crate::cloudinit::disk_spec(&path);
                match spec.disks.iter().any(|d| d.vdev == disk.vdev) {
                    true => Err(format!(
                        "DiskConfigList: {} disks leave no room for the cloud-init disk, {}",
                        spec.disks.len(),
                        disk.vdev
                    )),
                    false => Ok(Some((disk, crate::cloudinit::disk_status(&path)))),
                }
            });
            match disk {
                Ok(Some((disk, status))) => {
                    spec.disks.push(disk);
                    self.status.disk_status_list.push(status);
                }
                Ok(None) => {}
                Err(e) => {
                    self.publish();
                    return self.boot_failed(e);
                }
            }
        }
        self.publish();
        // EVE looks at each image before it boots an app: one whose real format is not its
        // config's is not booted.
        if let Err(e) = crate::diskformat::check(&self.shared.disk_probe, &self.status.disk_status_list) {
            self.boot_failed(e);
            return;
        }
        // Its own copies of the shared images it writes to (made once, on this thread).
        if let Err(e) = self.use_disk_copies(&mut spec) {
            self.boot_failed(e);
            return;
        }
        // What xl puts into every domain from xl.conf, as xl reads it: afresh at each create.
        if let Err(e) = crate::xlconf::apply(self.shared.xl_conf.as_deref(), &mut spec) {
            self.boot_failed(e);
            return;
        }

        if !wanted.is_empty() {
            // Bound first: the guard must be gone before boot_failed locks again.
            let reserved = if keep {
                Ok(self.held_adapters.clone())
            } else {
                self.shared.adapters.lock().reserve(self.uuid, &wanted)
            };
            // What the adapters give, by the guest's mode, into the spec (adapters/resources.rs).
            let host = self.shared.adapters.lock().sources().host.clone();
            let mode = self.desired.as_ref().map(|d| d.config.vm.virtualization_mode).unwrap_or_default();
            let filled = reserved.and_then(|r| r.fill(mode, &host, &mut spec).map(|()| r));
            match filled {
                Ok(reservation) => {
                    self.status.adapters_failed = false;
                    // EVE's meaning: the adapters it holds, listed only once reserved.
                    self.status.io_adapter_list = wanted;
                    // FML's `pci_permissive = 1` is every device's default, as xl reads it.
                    if translated.pci_permissive {
                        spec.pcis.iter_mut().for_each(|p| p.permissive = true);
                    }
                    self.held_adapters = reservation;
                }
                Err(e) => {
                    self.status.adapters_failed = true;
                    self.boot_failed(e);
                    return;
                }
            }
        }
        self.prepare_native(&mut spec);
        // Exactly what libxl is asked for, the reserved devices included.
        self.write_xl_cfg(&spec);
        if let Err(e) = self.record_fresh_boot() {
            self.boot_failed(e);
            return;
        }
        if let Err(e) = self.record(Step::Creating) {
            self.boot_failed(format!("cannot record the create in {}: {e}", self.shared.paths.run_dir.display()));
            return;
        }
        let started = Instant::now();
        let domid = match self.shared.hv.create_paused(&spec) {
            Ok(domid) => domid,
            Err(e) => {
                self.clear_record();
                self.boot_failed(e.to_string());
                return;
            }
        };
        self.set_smbios_product(domid);
        if let Err(e) = self.run_paused(domid, &spec) {
            self.clear_record();
            self.boot_failed(e);
            return;
        }
        log::debug!("{name}: domain {domid} booted in {:?}", started.elapsed());
    }

    /// The end of every start, a boot's or a restore's, from the paused `domid` on: its events
    /// armed, the vif offloads off and the vif names read (and published at once, BOOTING:
    /// zedmanager learns the names as soon as the interfaces exist), unpaused; then RUNNING,
    /// with the `running` record and the status (domid, boot time) to say so. On an error the
    /// domain is destroyed and unwatched, and the error returned for the caller to report.
    pub(super) fn run_paused(&mut self, domid: DomId, spec: &DomainSpec) -> Result<(), String> {
        self.arm_watch(domid);
        // The devices the daemon sets up itself (native.rs), checked before the guest runs.
        if let Some(native) = self.shared.native.clone() {
            match native.attach(domid.get()) {
                Ok(done) => self.native_loops = done.loops,
                Err((e, partial)) => {
                    let e = self.abandon_start(domid, format!("device setup failed: {e}"));
                    native.release(&partial.loops);
                    return Err(e);
                }
            }
        }
        let hv = std::sync::Arc::clone(&self.shared.hv);
        let named = hv.disable_vif_offload(domid, spec.vifs.len()).and_then(|()| hv.vif_names(domid, spec.vifs.len()));
        let names = match named {
            Ok(names) => names,
            Err(e) => return Err(self.abandon_start(domid, e)),
        };
        self.status.vif_list = self.vif_infos(&names);
        self.publish();
        if let Err(e) = hv.unpause(domid) {
            return Err(self.abandon_start(domid, e));
        }
        // Its device model may make the emulated NICs' taps only as the guest starts (EVE
        // looks again after its start too).
        self.status.vif_list = self.vif_infos(&names);
        self.record_or_log(Step::Running { domid: domid.get() });
        self.status.domain_name = spec.name.clone();
        self.status.domain_id = domid.get();
        // A guest's own reboot continues its run: zedmanager sees a new BootTime as a new one.
        if !self.rebooting {
            self.status.boot_time = Some(Utc::now());
        }
        self.rebooting = false;
        self.status.boot_failed = false;
        self.run_error = None;
        self.ever_ran = true;
        self.phase = Phase::Running { domid, paused: false };
        Ok(())
    }

    /// Gives the devices the daemon sets up itself the no-op script (native.rs).
    pub(super) fn prepare_native(&self, spec: &mut DomainSpec) {
        if let Some(native) = &self.shared.native {
            let taken = crate::native::prepare(spec, native.script());
            log::debug!("{}: {taken} device(s) set up natively", self.name());
        }
    }

    /// Detaches the loop devices its disks held that the kernel has not cleared (blkback
    /// never opened them: a start that failed half-way).
    pub(super) fn release_native_loops(&mut self) {
        let loops = std::mem::take(&mut self.native_loops);
        if let Some(native) = &self.shared.native
            && !loops.is_empty()
        {
            native.release(&loops);
        }
    }

    /// Destroys and unwatches a domain whose start failed with `e`, and lets go of the loop
    /// devices its disks held; `e`, for the caller.
    fn abandon_start(&mut self, domid: DomId, e: impl std::fmt::Display) -> String {
        if let Err(d) = self.shared.hv.destroy(domid) {
            log::error!("{}: destroying domain {domid} after a failed start: {d}", self.name());
        }
        self.release_native_loops();
        self.watch = None;
        // Its vifs' names went with it.
        self.status.vif_list.clear();
        e.to_string()
    }

    /// The vifs as the status reports them: the config's, each with the name its backend got
    /// in dom0, or, as EVE reports it, that name with `-emu` when that interface exists (the
    /// tap of an HVM guest's emulated NIC, beside the PV one: the one its traffic uses when the
    /// guest has no PV network driver).
    fn vif_infos(&self, names: &[String]) -> Vec<VifInfo> {
        let host = self.shared.adapters.lock().sources().host.clone();
        let configs = self.desired.as_ref().map(|d| d.config.vif_list.clone()).unwrap_or_default();
        configs
            .into_iter()
            .zip(names)
            .map(|(config, name)| {
                let emu = format!("{name}-emu");
                let vif_used = if host.has_interface(&emu) { emu } else { name.clone() };
                VifInfo { config, vif_used }
            })
            .collect()
    }

    /// Its adapters cannot be had until the adapter inputs arrive (at boot, nim publishes dom0's
    /// ports a little after us): not a boot attempt, so no `BootFailed` and no try counted, and
    /// no wait for `timer.boot.retry` either; the reason is in the status meanwhile and is
    /// looked at again every couple of seconds (a lock and a check).
    fn wait_for_adapters(&mut self, wanted: &[crate::eve::IoAdapter], why: String) {
        let names: Vec<&str> = wanted.iter().map(|w| w.name.as_str()).collect();
        let text = format!("IoAdapterList: adapters {} cannot be assigned yet: {why}", names.join(", "));
        if self.run_error.as_ref().is_none_or(|e| e.error != text) {
            log::info!("{}: waiting for its adapters: {why}", self.name());
            self.run_error = Some(ErrorDescription::now(text, "the adapter inputs arrive"));
        }
        self.status.adapters_failed = true;
        self.retry = Retry::At(super::after(ADAPTERS_RECHECK));
    }

    /// EVE's SMBIOS product name for OpenStack metadata (`cloudinit.rs`), while the domain is
    /// paused; as in EVE, a failure only costs the guest its metadata hint.
    fn set_smbios_product(&self, domid: DomId) {
        let product = self.desired.as_ref().filter(|d| d.source == super::Source::Eve);
        if let Some(product) = product.and_then(|d| crate::cloudinit::smbios_product_name(&d.config))
            && let Err(e) = self.shared.hv.set_bios_string(domid, "system-product-name", product)
        {
            log::warn!("{}: cannot set its SMBIOS product name: {e}", self.name());
        }
    }

    /// Gives the disks that write to a shared image the domain's own copy (diskcopies.rs),
    /// publishing how far each copy has come as it is made (at most every 64 MiB).
    fn use_disk_copies(&mut self, spec: &mut DomainSpec) -> Result<(), String> {
        let Some(copies) = self.shared.disk_copies.clone() else { return Ok(()) };
        let name = self.name();
        let mut last_log = Instant::now();
        let cancel = std::sync::Arc::clone(&self.copy_cancel);
        let made = copies.apply(self.uuid, spec, &cancel, &mut |now| {
            self.status.disk_copies = now.to_vec();
            self.publish();
            if let Some(c) = now.last().filter(|_| last_log.elapsed() >= Duration::from_secs(5)) {
                last_log = Instant::now();
                log::info!("{name}: copying {} for {}: {} of {} MiB", c.image, c.vdev, c.done >> 20, c.total >> 20);
            }
        });
        match made {
            Ok(made) => {
                for c in made.iter().filter(|c| !c.reused) {
                    log::info!(
                        "{name}: {} is its own {} copy of {} ({} MiB)",
                        c.copy,
                        c.method,
                        c.image,
                        c.total >> 20
                    );
                }
                self.status.disk_copies = made;
                Ok(())
            }
            Err(e) => {
                self.status.disk_copies.clear();
                Err(e)
            }
        }
    }

    /// An EVE container app (container/eve.rs): EVE's `EnvVariables` from its user data, its
    /// run spec written into its volume, the container kernel and initramfs.
    fn prepare_container(&mut self, volume: &std::path::Path, spec: &mut DomainSpec) -> Result<(), String> {
        let Some(desired) = self.desired.as_ref() else { return Ok(()) };
        match crate::container::eve::mount_root(self.shared.containers.snapshots.as_ref(), volume)? {
            crate::container::eve::Root::MountedNow(id) => {
                log::info!("{}: containerd snapshot {id:?} mounted at {}/rootfs", self.name(), volume.display());
            }
            root => log::debug!("{}: root filesystem of {}: {root:?}", self.name(), volume.display()),
        }
        let user_data =
            crate::cloudinit::user_data(&desired.config, &self.shared.cipher_keys).map_err(|e| e.to_string())?;
        let (env, files) = match &user_data {
            Some(text) => {
                (Some(crate::container::eve::env_variables(text)?), crate::container::eve::writable_files(text)?)
            }
            None => (None, Vec::new()),
        };
        let vifs: Vec<(Option<String>, u32)> =
            spec.vifs.iter().map(|v| (v.mac.map(|m| m.to_string()), v.mtu.unwrap_or(0))).collect();
        let mut run = crate::container::eve::run_spec(volume, &env.clone().unwrap_or_default(), &vifs, &spec.name)?;
        run.volumes = crate::container::eve::volume_mounts(&self.status.disk_status_list)?;
        for mount in run.volumes.iter().filter(|m| !m.read_only) {
            let disk = spec.disks.iter().find(|d| d.vdev == mount.device && d.format == xenctl::DiskFormat::Raw);
            if let Some(target) = disk.and_then(|d| d.target.as_deref())
                && crate::container::eve::format_if_blank(std::path::Path::new(target))?
            {
                log::info!("{}: blank volume {target} given an ext4 file system for {}", self.name(), mount.target);
            }
        }
        let version = crate::cloudinit::version(&desired.config);
        if crate::container::eve::apply_write_files(&volume.join("rootfs"), self.uuid, &version, &files)? {
            log::info!(
                "{}: cloud-init version {version}: {} file(s) written into its root filesystem",
                self.name(),
                files.len()
            );
        }
        crate::container::eve::prepare(&self.shared.containers, volume, &run, spec)?;
        self.status.oci_config_dir = volume.to_string_lossy().into_owned();
        self.status.env_variables = env;
        log::info!("{}: container {:?} from {}", self.name(), run.argv, volume.display());
        Ok(())
    }

    /// Builds the domain's cloud-init config disk (`cloudinit.rs`), if EVE would give it one.
    fn cloud_init_disk(&self) -> Result<Option<std::path::PathBuf>, crate::cloudinit::CloudInitError> {
        let Some(desired) = self.desired.as_ref() else {
            return Ok(None);
        };
        let multipart = self.settings().process_cloud_init_multipart;
        crate::cloudinit::prepare(&desired.config, multipart, &self.shared.cipher_keys, &self.shared.paths.status_dir)
    }

    fn boot_failed(&mut self, error: String) {
        self.rebooting = false;
        self.release_adapters();
        let retry = self.settings().boot_retry;
        log::error!("{}: boot failed: {error}; retrying in {}s", self.name(), retry.as_secs());
        self.status.boot_failed = true;
        self.run_error = Some(ErrorDescription::now(error, format!("retry in {} s", retry.as_secs())));
        self.status.domain_id = 0;
        self.phase = Phase::Idle { halted: true };
        self.retry = Retry::At(super::after(retry));
    }
}
