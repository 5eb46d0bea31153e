//! A domain's life through libxl: create (paused), unpause, pause, graceful shutdown and reboot
//! requests, the ACPI power button, destroy, SysRq, and the console's tty.
//!
//! All calls are synchronous (libxl's `ao_how` is NULL): they return when libxl is done, and
//! may be made from many threads at once. Graceful requests only ask the guest; use
//! [`Context::shutdown_and_wait`] or a [`DomainWatch`](crate::DomainWatch) to learn the outcome.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::error::{Error, Result, Subject, check};
use crate::events::DomainEvent;
use crate::raw::MallocString;
use crate::spec::DomainSpec;
use crate::types::{DomId, ShutdownReason};

impl Context {
    /// Creates the domain and leaves it paused: memory allocated, kernel loaded, devices and
    /// their backends set up (hotplug scripts run), vCPUs not yet running. Follow with any
    /// pre-boot setup (e.g. [`Xenstore::disable_vif_offload`](crate::Xenstore::disable_vif_offload))
    /// and [`unpause`](Context::unpause).
    ///
    /// On failure libxl destroys whatever it had built; no half-created domain is left.
    pub fn create_paused(&self, spec: &DomainSpec) -> Result<DomId> {
        let mut cfg = self.libxl_config(spec)?;
        let mut domid: u32 = xen_sys::INVALID_DOMID as u32;
        let started = Instant::now();
        // SAFETY: ctx is live; cfg is an initialised config owned by us for the whole call;
        // domid is a valid out-pointer; NULL ao_how makes the call synchronous.
        let rc = unsafe {
            xen_sys::libxl_domain_create_new(
                self.raw(),
                cfg.as_mut_ptr(),
                &mut domid,
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        check(rc, "create", || Subject::Named(spec.name.clone()))?;
        let domid = DomId::new(domid);
        log::info!("domain '{}' created paused as domain {domid} in {:?}", spec.name, started.elapsed());
        Ok(domid)
    }

    /// Lets a paused domain run.
    pub fn unpause(&self, domid: DomId) -> Result<()> {
        // SAFETY: ctx is live; synchronous call.
        let rc = unsafe { xen_sys::libxl_domain_unpause(self.raw(), domid.get(), std::ptr::null()) };
        check(rc, "unpause", || Subject::Domain(domid))
    }

    /// Stops a domain's vCPUs from being scheduled (its state stays in memory).
    pub fn pause(&self, domid: DomId) -> Result<()> {
        refuse_dom0(domid, "pause")?;
        // SAFETY: ctx is live; synchronous call.
        let rc = unsafe { xen_sys::libxl_domain_pause(self.raw(), domid.get(), std::ptr::null()) };
        check(rc, "pause", || Subject::Domain(domid))
    }

    /// Asks the guest to shut down (it powers off on its own time). Returns once asked.
    ///
    /// [`Error::NoPvDrivers`] means the guest cannot receive the request (an HVM guest without
    /// PV drivers): try [`power_button`](Context::power_button) instead.
    pub fn shutdown(&self, domid: DomId) -> Result<()> {
        refuse_dom0(domid, "shutdown")?;
        // SAFETY: ctx is live; synchronous call (it only writes the request to xenstore).
        let rc = unsafe { xen_sys::libxl_domain_shutdown(self.raw(), domid.get(), std::ptr::null()) };
        check(rc, "shutdown", || Subject::Domain(domid))
    }

    /// Asks the guest to shut down and waits up to `timeout` for it to do so.
    ///
    /// Returns the shutdown reason Xen reports (normally `Poweroff`), `None` if the domain
    /// vanished without a shutdown report (someone destroyed it), or
    /// [`Error::ShutdownTimedOut`] if the guest ignored the request. A shut-down domain still
    /// exists until destroyed: destroy it to release its resources.
    pub fn shutdown_and_wait(&self, domid: DomId, timeout: Duration) -> Result<Option<ShutdownReason>> {
        let watch = self.watch_domain(domid)?;
        self.shutdown(domid)?;
        self.wait_shutdown(&watch, domid, timeout)
    }

    /// Presses the virtual ACPI power button: the way to ask an HVM guest without PV drivers
    /// to shut down. PV guests have no ACPI and get an error.
    pub fn power_button(&self, domid: DomId) -> Result<()> {
        refuse_dom0(domid, "press the power button of")?;
        // SAFETY: ctx is live; synchronous call.
        let rc = unsafe {
            xen_sys::libxl_send_trigger(self.raw(), domid.get(), xen_sys::LIBXL_TRIGGER_POWER, 0, std::ptr::null())
        };
        check(rc, "power button", || Subject::Domain(domid))
    }

    /// Asks the guest to reboot. It will shut down with reason `Reboot`; the toolstack then
    /// destroys it and creates it again (Xen does not restart domains by itself).
    pub fn reboot(&self, domid: DomId) -> Result<()> {
        refuse_dom0(domid, "reboot")?;
        // SAFETY: ctx is live; synchronous call.
        let rc = unsafe { xen_sys::libxl_domain_reboot(self.raw(), domid.get(), std::ptr::null()) };
        check(rc, "reboot", || Subject::Domain(domid))
    }

    /// Destroys the domain at once, whatever it is doing, and tears down its devices. Returns
    /// when libxl is done; the domain may linger as "dying" while Xen frees its memory (its name
    /// is free already), and a [`DomainEvent::Death`] follows.
    pub fn destroy(&self, domid: DomId) -> Result<()> {
        refuse_dom0(domid, "destroy")?;
        // SAFETY: ctx is live; synchronous call.
        let rc = unsafe { xen_sys::libxl_domain_destroy(self.raw(), domid.get(), std::ptr::null()) };
        check(rc, "destroy", || Subject::Domain(domid))?;
        log::info!("domain {domid} destroyed");
        Ok(())
    }

    /// Sends a magic SysRq key to the guest kernel (e.g. `'s'` to sync, `'c'` to crash).
    pub fn sysrq(&self, domid: DomId, key: char) -> Result<()> {
        refuse_dom0(domid, "send sysrq to")?;
        if !key.is_ascii_graphic() {
            return Err(Error::invalid("sysrq key", key.to_string(), "must be a printable ASCII character"));
        }
        // key is ASCII, so it fits a C char.
        let c = key as u8 as std::ffi::c_char;
        // SAFETY: ctx is live; synchronous call.
        let rc = unsafe { xen_sys::libxl_send_sysrq(self.raw(), domid.get(), c) };
        check(rc, "sysrq", || Subject::Domain(domid))
    }

    /// The dom0 tty of the domain's primary console (PV console, or the serial port of an HVM
    /// guest), e.g. `/dev/pts/3`, for a console client to attach to.
    pub fn console_tty(&self, domid: DomId) -> Result<PathBuf> {
        let mut path: *mut std::ffi::c_char = std::ptr::null_mut();
        // SAFETY: ctx is live; path is a valid out-pointer, set to a malloc'd string on success.
        let rc = unsafe { xen_sys::libxl_primary_console_get_tty(self.raw(), domid.get(), &mut path) };
        // SAFETY: path is null or malloc'd and ours, whatever rc says.
        let owned = unsafe { MallocString::from_raw(path) };
        check(rc, "console", || Subject::Domain(domid))?;
        owned.map(|p| PathBuf::from(p.to_string_lossy())).ok_or(Error::Libxl {
            op: "console",
            subject: Subject::Domain(domid),
            code: crate::error::LibxlErrorCode::ERROR_FAIL,
        })
    }

    /// Waits on `watch` for the domain to shut down (or die) within `timeout`.
    pub(crate) fn wait_shutdown(
        &self,
        watch: &crate::DomainWatch,
        domid: DomId,
        timeout: Duration,
    ) -> Result<Option<ShutdownReason>> {
        match watch.wait_for(timeout, |_| true) {
            Some(DomainEvent::Shutdown { reason, .. }) => Ok(Some(reason)),
            Some(DomainEvent::Death { .. }) => Ok(None),
            None => Err(Error::ShutdownTimedOut { domid, timeout }),
        }
    }
}

/// dom0 must never be paused, shut down or destroyed through this API by mistake.
fn refuse_dom0(domid: DomId, op: &'static str) -> Result<()> {
    if domid.is_dom0() { Err(Error::Dom0Refused { op }) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dom0_is_refused_before_any_libxl_call() {
        let err = refuse_dom0(DomId::DOM0, "destroy").unwrap_err();
        assert_eq!(err.to_string(), "refusing to destroy dom0");
        assert!(refuse_dom0(DomId::new(1), "destroy").is_ok());
    }
}
