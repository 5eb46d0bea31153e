//! [`DomainSpec::to_libxl_json`]: the libxl domain config as JSON (what `xl -N create` prints),
//! made without a libxl context, so a dry run works on a machine without Xen.
//!
//! libxl's JSON generator is the only one used (never our own), so the output is exactly what
//! [`Context::spec_json`](crate::Context::spec_json) gives in dom0. A context cannot be had
//! without Xen (`libxl_ctx_alloc` opens the hypervisor and xenstore), so this passes a NULL
//! one; why that is sound is in the SAFETY comment below.

use crate::error::{Error, Result};
use crate::raw::MallocString;
use crate::spec::DomainSpec;
use crate::types::{DomainKind, ShutdownAction};

impl DomainSpec {
    /// The libxl domain config this spec becomes, as libxl's JSON: the same text
    /// [`Context::spec_json`](crate::Context::spec_json) returns and `xl -N create` prints for
    /// the equivalent xl.cfg, but needing neither Xen nor a context.
    pub fn to_libxl_json(&self) -> Result<String> {
        let mut cfg = self.to_libxl()?;
        // SAFETY: cfg is a live, fully initialised config, exclusively ours for the call.
        // libxl_domain_config_to_json(ctx, p) is libxl__object_to_json(ctx, ...)
        // (gentypes.py, libxl_json.c), and that uses ctx only to log, via LIBXL__LOG ->
        // libxl__logv, which reads ctx->lg, in two failure branches:
        //  1. a yajl generator status other than ok. The generated gen_json functions emit a
        //     well-formed document (map keys are always strings, nesting is a few levels deep
        //     against yajl's limit of 128, and the config has no floating-point fields);
        //     the handle comes from libxl_yajl_gen_alloc, which does not enable UTF-8
        //     validation; and yajl_gen_get_buf fails only for a handle with a print callback,
        //     which this one does not have. So no status error can occur.
        //  2. strdup of the finished buffer returning NULL: out of memory. yajl's own buffer
        //     code (yajl_buf.c) does not check its malloc/realloc either, so out of memory
        //     during generation already crashes inside yajl whatever ctx is; a NULL ctx adds
        //     no failure mode, and the process dies on OOM as Rust's allocator makes it do.
        // Nothing else reads ctx: no gc is set up (no GC_INIT, so no libxl__alloc_failed, the
        // other ctx user), and the gen_json functions take only the yajl handle and the value.
        // A NULL result (libxl_yajl_gen_alloc failing: out of memory) is handled below.
        let json = unsafe { xen_sys::libxl_domain_config_to_json(std::ptr::null_mut(), cfg.as_mut_ptr()) };
        // SAFETY: json is null or a malloc'd NUL-terminated string we now own.
        let json = unsafe { MallocString::from_raw(json) };
        json.map(|j| j.to_string_lossy()).ok_or(Error::OutOfMemory { op: "converting the domain config to JSON" })
    }
}

impl DomainSpec {
    /// A spec for a domain known only by its libxl JSON config (what a migration stream
    /// carries): [`libxl_json`](DomainSpec::libxl_json) holds the config, used as it is, and
    /// the fields describe it as far as the JSON says: name, UUID, type, memory, vCPUs and
    /// the shutdown actions (libxl's defaults where it leaves them out). Needs no Xen.
    pub fn from_libxl_json(json: &str) -> Result<DomainSpec> {
        let bad =
            |what: &str, value: String| Error::invalid(format!("libxl_json.{what}"), value, "not as libxl writes it");
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| Error::invalid("libxl_json", e.to_string(), "not JSON"))?;
        let c = &v["c_info"];
        let b = &v["b_info"];
        let kind = match c["type"].as_str() {
            Some("pv") => DomainKind::Pv,
            Some("pvh") => DomainKind::Pvh,
            Some("hvm") => DomainKind::Hvm,
            other => return Err(bad("c_info.type", format!("{other:?}"))),
        };
        let name = c["name"].as_str().ok_or_else(|| bad("c_info.name", c["name"].to_string()))?;
        let mut spec = DomainSpec::new(name, kind);
        if let Some(u) = c["uuid"].as_str() {
            spec.uuid = u.parse().map_err(|_| bad("c_info.uuid", u.to_string()))?;
        }
        let max_kib = b["max_memkb"].as_u64();
        if let Some(target) = b["target_memkb"].as_u64().or(max_kib) {
            spec.memory_mib = (target / 1024).max(1);
        }
        spec.max_memory_mib = max_kib.map(|k| (k / 1024).max(1));
        if let Some(max) = b["max_vcpus"].as_u64().filter(|&m| m > 0) {
            spec.max_vcpus = Some(u32::try_from(max).map_err(|_| bad("b_info.max_vcpus", max.to_string()))?);
            let online = b["avail_vcpus"].as_array().map_or(max, |a| a.len() as u64).max(1);
            spec.vcpus = u32::try_from(online.min(max)).unwrap_or(1);
        }
        let action = |key: &str, default: ShutdownAction| match v[key].as_str() {
            None => Ok(default),
            Some("destroy") => Ok(ShutdownAction::Destroy),
            Some("restart") => Ok(ShutdownAction::Restart),
            Some("rename_restart") => Ok(ShutdownAction::RestartRename),
            Some("preserve") => Ok(ShutdownAction::Preserve),
            Some("coredump_destroy") => Ok(ShutdownAction::CoredumpDestroy),
            Some("coredump_restart") => Ok(ShutdownAction::CoredumpRestart),
            Some("soft_reset") => Ok(ShutdownAction::SoftReset),
            Some(other) => Err(bad(key, other.to_string())),
        };
        // libxl's JSON leaves out its default (destroy) for every action.
        spec.on_poweroff = action("on_poweroff", ShutdownAction::Destroy)?;
        spec.on_reboot = action("on_reboot", ShutdownAction::Destroy)?;
        spec.on_crash = action("on_crash", ShutdownAction::Destroy)?;
        spec.on_watchdog = action("on_watchdog", ShutdownAction::Destroy)?;
        spec.on_soft_reset = action("on_soft_reset", ShutdownAction::Destroy)?;
        spec.libxl_json = Some(json.to_string());
        spec.validate()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{DiskSpec, VifSpec, VncSpec};
    use crate::types::ShutdownAction;
    use uuid::Uuid;

    #[test]
    fn json_without_a_context_has_every_field_xl_prints() {
        let uuid = Uuid::parse_str("6ba7b810-9dad-11d1-80b4-00c04fd430c8").unwrap();
        let spec = DomainSpec::pv("web")
            .uuid(uuid)
            .memory_mib(256)
            .vcpus(2)
            .kernel("/boot/vmlinuz")
            .cmdline("root=/dev/xvda1 ro")
            .disk(DiskSpec::new("/srv/web.img", "xvda"))
            .vif(VifSpec { rate: Some("10Mb/s".into()), ..VifSpec::bridged("xenbr0") })
            .on_shutdown(ShutdownAction::Destroy, ShutdownAction::Restart, ShutdownAction::Preserve);
        let json: serde_json::Value = serde_json::from_str(&spec.to_libxl_json().unwrap()).unwrap();
        assert_eq!(json["c_info"]["type"], "pv");
        assert_eq!(json["c_info"]["name"], "web");
        assert_eq!(json["c_info"]["uuid"], uuid.to_string());
        let b = &json["b_info"];
        assert_eq!((b["max_vcpus"].as_i64(), b["avail_vcpus"].clone()), (Some(2), serde_json::json!([0, 1])));
        assert_eq!((b["max_memkb"].as_u64(), b["target_memkb"].as_u64()), (Some(256 * 1024), Some(256 * 1024)));
        assert_eq!((b["kernel"].as_str(), b["cmdline"].as_str()), (Some("/boot/vmlinuz"), Some("root=/dev/xvda1 ro")));
        assert_eq!(json["disks"][0]["pdev_path"], "/srv/web.img");
        assert_eq!(json["nics"][0]["bridge"], "xenbr0");
        assert_eq!(json["nics"][0]["rate_bytes_per_interval"], 62500);
        // destroy is libxl's default action, which its JSON leaves out (xl's output does too).
        assert_eq!((json["on_crash"].as_str(), json.get("on_watchdog")), (Some("preserve"), None));
        assert_eq!(json["on_soft_reset"], "soft_reset");
    }

    #[test]
    fn hvm_json_has_the_hvm_union() {
        let spec = DomainSpec::hvm("win").serial("pty").vnc(VncSpec { display: Some(1), ..VncSpec::default() });
        let json: serde_json::Value = serde_json::from_str(&spec.to_libxl_json().unwrap()).unwrap();
        let hvm = &json["b_info"]["type.hvm"];
        assert_eq!((hvm["serial"].as_str(), hvm["vnc"]["enable"].as_str()), (Some("pty"), Some("True")));
        assert_eq!(hvm["vnc"]["display"], 1);
    }

    #[test]
    fn an_invalid_spec_is_refused_before_libxl() {
        assert!(DomainSpec::pv("x").to_libxl_json().unwrap_err().to_string().contains("kernel"));
    }

    #[test]
    fn a_spec_from_libxl_json_describes_it_and_keeps_it() {
        let uuid = Uuid::parse_str("6ba7b810-9dad-11d1-80b4-00c04fd430c8").unwrap();
        let spec = DomainSpec::pvh("mig")
            .uuid(uuid)
            .memory_mib(128)
            .max_memory_mib(256)
            .vcpus(2)
            .kernel("/boot/vmlinuz")
            .on_shutdown(ShutdownAction::Destroy, ShutdownAction::Restart, ShutdownAction::Preserve);
        let json = spec.to_libxl_json().unwrap();
        let back = DomainSpec::from_libxl_json(&json).unwrap();
        assert_eq!((back.name.as_str(), back.uuid, back.kind), ("mig", uuid, DomainKind::Pvh));
        assert_eq!((back.memory_mib, back.max_memory_mib, back.vcpus, back.max_vcpus), (128, Some(256), 2, Some(2)));
        assert_eq!(
            (back.on_poweroff, back.on_reboot, back.on_crash),
            (ShutdownAction::Destroy, ShutdownAction::Restart, ShutdownAction::Preserve)
        );
        assert_eq!(back.libxl_json.as_deref(), Some(json.as_str()));
        assert!(back.to_xl_config().unwrap_err().to_string().contains("no xl.cfg form"));
        for bad in ["{", r#"{"c_info":{"type":"pv"}}"#, r#"{"c_info":{"type":"arm","name":"x"}}"#] {
            assert!(DomainSpec::from_libxl_json(bad).is_err(), "{bad}");
        }
    }
}
