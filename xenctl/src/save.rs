//! Save and restore, in `xl`'s save-file format, so images move freely between this crate and
//! `xl save` / `xl restore`.
//!
//! The format (tools/xl/xl.h): a 48-byte header — 32 bytes of magic, then four native-endian
//! u32s: byte-order mark `0x01020304`, mandatory flags (bit 0: config is JSON, bit 1: libxl
//! stream v2), optional flags, optional-data length — then the optional data (a u32 length and
//! the domain config as libxl JSON, NUL-terminated), then libxl's migration stream.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use crate::context::Context;
use crate::convert::LibxlDomainConfig;
use crate::error::{Error, Result, Subject, check};
use crate::raw::{self, MallocString, Owned};
use crate::spec::DomainSpec;
use crate::types::DomId;

const MAGIC: &[u8; 32] = b"Xen saved domain, xl format\n \0 \r";
const BYTEORDER: u32 = 0x0102_0304;
const FLAG_JSON: u32 = 1 << 0;
const FLAG_STREAM_V2: u32 = 1 << 1;
const KNOWN_MANDATORY: u32 = FLAG_JSON | FLAG_STREAM_V2;
const HEADER_LEN: usize = 48;
/// How long `save` waits for the destroyed domain to disappear.
const DEATH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Refuse absurd optional-data sizes before allocating (real configs are a few KiB).
const MAX_OPTIONAL_DATA: u32 = 16 << 20;

/// What the header of a save image says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveImageHeader {
    /// The domain config saved with it, as libxl JSON (what `xl -N create` prints), if any.
    pub config_json: Option<String>,
    /// libxl stream version (2 for any image from Xen 4.7 on).
    pub stream_version: u32,
    /// Where libxl's stream starts in the file.
    pub stream_offset: u64,
}

impl SaveImageHeader {
    /// Reads and checks the header of the image at `path`.
    pub fn read(path: &Path) -> Result<SaveImageHeader> {
        let mut file =
            File::open(path).map_err(|source| Error::Io { op: "open save image", path: path.into(), source })?;
        Self::parse(&mut file, path)
    }

    /// Reads and checks a header from `r`, positioned at the start of an image; `path` names
    /// the image in errors. Reads no further than the header's config section.
    pub fn parse(r: &mut impl Read, path: &Path) -> Result<SaveImageHeader> {
        let bad = |reason: &str| Error::BadSaveImage { path: path.into(), reason: reason.into() };
        let mut head = [0u8; HEADER_LEN];
        r.read_exact(&mut head).map_err(|_| bad("shorter than a save-file header"))?;
        if &head[..32] != MAGIC {
            return Err(bad("not an xl save file (wrong magic)"));
        }
        let word =
            |i: usize| u32::from_ne_bytes([head[32 + 4 * i], head[33 + 4 * i], head[34 + 4 * i], head[35 + 4 * i]]);
        let (byteorder, mandatory, optional, optlen) = (word(0), word(1), word(2), word(3));
        if byteorder != BYTEORDER {
            return Err(bad("written on a machine of the other byte order"));
        }
        if mandatory & !KNOWN_MANDATORY != 0 {
            return Err(bad(&format!(
                "has mandatory flags this version does not know ({:#x})",
                mandatory & !KNOWN_MANDATORY
            )));
        }
        if optional != 0 {
            log::debug!("{}: ignoring optional flags {optional:#x}", path.display());
        }
        if optlen > MAX_OPTIONAL_DATA {
            return Err(bad("claims an implausibly large config section"));
        }
        let mut opt = vec![0u8; optlen as usize];
        r.read_exact(&mut opt).map_err(|_| bad("truncated in its config section"))?;
        let config_json = if opt.len() >= 4 {
            let len = u32::from_ne_bytes([opt[0], opt[1], opt[2], opt[3]]) as usize;
            let data = opt.get(4..4 + len).ok_or_else(|| bad("config length runs past its section"))?;
            if mandatory & FLAG_JSON == 0 {
                return Err(bad("holds an old xl.cfg-text config, not JSON; restore it with xl"));
            }
            let text = data.strip_suffix(&[0]).unwrap_or(data);
            Some(String::from_utf8(text.to_vec()).map_err(|_| bad("config is not UTF-8"))?)
        } else {
            None
        };
        Ok(SaveImageHeader {
            config_json,
            stream_version: if mandatory & FLAG_STREAM_V2 != 0 { 2 } else { 1 },
            stream_offset: (HEADER_LEN + opt.len()) as u64,
        })
    }

    /// The header bytes for an image carrying `config_json`.
    pub(crate) fn encode(config_json: &str) -> Vec<u8> {
        let mut config = config_json.as_bytes().to_vec();
        config.push(0);
        // A config over 4 GiB cannot come from libxl; saturate rather than wrap.
        let config_len = u32::try_from(config.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(HEADER_LEN + 4 + config.len());
        out.extend_from_slice(MAGIC);
        for word in [BYTEORDER, FLAG_STREAM_V2 | FLAG_JSON, 0, config_len.saturating_add(4)] {
            out.extend_from_slice(&word.to_ne_bytes());
        }
        out.extend_from_slice(&config_len.to_ne_bytes());
        out.extend_from_slice(&config);
        out
    }
}

impl Context {
    /// Saves the domain's memory and state to `path` (an `xl restore`-compatible image, mode
    /// 0600) and destroys it, as `xl save` does. Returns once the domain is gone.
    ///
    /// The image is written to `<path>.partial` and renamed into place only once complete, so
    /// `path` never holds half an image. If saving fails the domain is resumed and keeps running.
    /// [`begin_save`](Context::begin_save) is the same save in the background, abortable, for a
    /// caller that puts the image in place itself.
    pub fn save(&self, domid: DomId, path: &Path) -> Result<()> {
        let partial = partial_path(path);
        // A partial image left by a save cut short; never followed if it is a symlink.
        match std::fs::remove_file(&partial) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("remove stale partial image", &partial)(e));
            }
            _ => {}
        }
        let mut job = self.begin_save(domid, &partial)?;
        job.wait()?;
        if let Err(e) = std::fs::rename(&partial, path) {
            let _ = std::fs::remove_file(&partial);
            if let Err(r) = self.resume(domid) {
                log::error!("domain {domid}: resume after a failed save failed too: {r}");
            }
            return Err(io("rename save image into place", path)(e));
        }
        log::info!("domain {domid} saved to {}", path.display());
        // Return only once the domain is gone: libxl's destroy returns while it is still dying,
        // and a caller that saved it usually restores it next.
        let watch = self.watch_domain(domid)?;
        self.destroy(domid)?;
        if watch.wait_for(DEATH_TIMEOUT, |e| matches!(e, crate::DomainEvent::Death { .. })).is_none() {
            log::warn!("domain {domid}: saved and destroyed, but still dying after {DEATH_TIMEOUT:?}");
        }
        Ok(())
    }

    /// Restores the image at `path` as a new domain configured by `spec` and lets it run: the
    /// guest carries on from where [`save`](Context::save) stopped it.
    ///
    /// This is [`restore_paused`](Context::restore_paused) followed by
    /// [`unpause`](Context::unpause). If the unpause fails, the restored domain is destroyed, so
    /// the call leaves either a running guest or nothing; the unpause error is returned. A caller
    /// that must act between restore and run (xenstore writes, as domainmgrd's vif offloads) uses
    /// `restore_paused`.
    pub fn restore(&self, spec: &DomainSpec, path: &Path) -> Result<DomId> {
        let domid = self.restore_paused(spec, path)?;
        if let Err(err) = self.unpause(domid) {
            if let Err(cleanup) = self.destroy(domid) {
                log::error!("domain {domid}: restored but not unpaused, and destroying it failed too: {cleanup}");
            }
            return Err(err);
        }
        Ok(domid)
    }

    /// Restores the image at `path` as a new domain configured by `spec`, and leaves it paused
    /// (as [`create_paused`](Context::create_paused) does). The spec must describe the same
    /// guest the image was saved from (memory size, devices); the image is not deleted.
    pub fn restore_paused(&self, spec: &DomainSpec, path: &Path) -> Result<DomId> {
        let mut cfg = self.libxl_config(spec)?;
        self.restore_with(&mut cfg, path, &spec.name)
    }

    /// Restores the image at `path` with the domain config saved inside it (as `xl restore`
    /// does), paused.
    pub fn restore_paused_as_saved(&self, path: &Path) -> Result<DomId> {
        let header = SaveImageHeader::read(path)?;
        let json = header.config_json.ok_or_else(|| Error::BadSaveImage {
            path: path.into(),
            reason: "carries no domain config; give one with restore_paused".into(),
        })?;
        let mut cfg = self.config_from_json(&json, path)?;
        // SAFETY: c_info.name is null or a string owned by cfg.
        let name = unsafe { raw::string_from_c(cfg.as_raw().c_info.name) }.unwrap_or_else(|| "(unnamed)".into());
        // Let Xen pick a fresh domid, as xl restore does by default.
        // SAFETY: cfg is exclusively ours; a plain field write.
        unsafe { (*cfg.as_mut_ptr()).c_info.domid = 0 };
        self.restore_with(&mut cfg, path, &name)
    }

    /// The libxl config of `spec`: its fields converted, or its
    /// [`libxl_json`](DomainSpec::libxl_json) parsed, for a fresh domid.
    pub(crate) fn libxl_config(&self, spec: &DomainSpec) -> Result<LibxlDomainConfig> {
        let Some(json) = &spec.libxl_json else {
            return spec.to_libxl();
        };
        spec.validate()?;
        let mut cfg = self.config_from_json(json, Path::new("(the domain's libxl JSON config)"))?;
        // SAFETY: cfg is exclusively ours; a plain field write (as restore_paused_as_saved).
        unsafe { (*cfg.as_mut_ptr()).c_info.domid = 0 };
        Ok(cfg)
    }

    /// Parses the libxl JSON config carried by the image (or stream) `source`.
    pub(crate) fn config_from_json(&self, json: &str, source: &Path) -> Result<LibxlDomainConfig> {
        let mut cfg = LibxlDomainConfig::empty();
        let json_c = raw::c_string("saved config", json)?;
        // SAFETY: ctx is live; cfg is initialised and empty; json_c is a valid C string.
        let rc = unsafe { xen_sys::libxl_domain_config_from_json(self.raw(), cfg.as_mut_ptr(), json_c.as_ptr()) };
        if rc != 0 {
            return Err(Error::BadSaveImage {
                path: source.into(),
                reason: format!("its config JSON does not parse ({rc})"),
            });
        }
        Ok(cfg)
    }

    fn restore_with(&self, cfg: &mut LibxlDomainConfig, path: &Path, name: &str) -> Result<DomId> {
        let header = SaveImageHeader::read(path)?;
        let mut file =
            File::open(path).map_err(|source| Error::Io { op: "open save image", path: path.into(), source })?;
        file.seek(SeekFrom::Start(header.stream_offset)).map_err(|source| Error::Io {
            op: "seek save image",
            path: path.into(),
            source,
        })?;
        let domid = self.restore_from_fd(cfg, file.as_fd(), None, header.stream_version, name)?;
        log::info!("domain '{name}' restored paused from {} as domain {domid}", path.display());
        Ok(domid)
    }

    /// Restores a domain configured by `cfg`, paused, from the libxl stream (of
    /// `stream_version`) that `stream` is positioned at, with libxl's restore parameters set
    /// as xl's `create_domain` sets them for a plain (not Remus/COLO) stream. `send_back` is
    /// the fd xl hands libxl beside an incoming migration stream (libxl uses it only for
    /// COLO). Returns when libxl has read the whole stream.
    pub(crate) fn restore_from_fd(
        &self,
        cfg: &mut LibxlDomainConfig,
        stream: BorrowedFd<'_>,
        send_back: Option<BorrowedFd<'_>>,
        stream_version: u32,
        name: &str,
    ) -> Result<DomId> {
        let mut params = Owned::<xen_sys::libxl_domain_restore_params>::new();
        params.checkpointed_stream = xen_sys::LIBXL_CHECKPOINTED_STREAM_NONE as i32;
        params.stream_version = stream_version;
        // SAFETY: params is initialised and ours; a plain defbool write, as xl does.
        unsafe { xen_sys::libxl_defbool_set(&mut params.userspace_colo_proxy, false) };
        let mut domid: u32 = xen_sys::INVALID_DOMID as u32;
        // SAFETY: ctx is live; cfg and params are initialised and ours for the whole
        // synchronous call; both fds are open for it (borrowed), the stream positioned at the
        // libxl stream.
        let rc = unsafe {
            xen_sys::libxl_domain_create_restore(
                self.raw(),
                cfg.as_mut_ptr(),
                &mut domid,
                stream.as_raw_fd(),
                send_back.map_or(-1, |fd| fd.as_raw_fd()),
                params.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        check(rc, "restore", || Subject::Named(name.to_string()))?;
        Ok(DomId::new(domid))
    }

    /// The running domain's configuration as libxl JSON (what `xl -N create` prints), as libxl
    /// recorded it at create time, with the devices it has now.
    pub fn domain_config_json(&self, domid: DomId) -> Result<String> {
        let mut cfg = LibxlDomainConfig::empty();
        // SAFETY: ctx is live; cfg is initialised and ours; synchronous call.
        let rc = unsafe {
            xen_sys::libxl_retrieve_domain_configuration(self.raw(), domid.get(), cfg.as_mut_ptr(), std::ptr::null())
        };
        check(rc, "read the configuration", || Subject::Domain(domid))?;
        // Saved images must not pin the old domid (xl does the same unless asked to).
        // SAFETY: cfg is exclusively ours; a plain field write.
        unsafe { (*cfg.as_mut_ptr()).c_info.domid = 0 };
        let private = self.inner.private_scripts.lock().clone();
        // SAFETY: cfg is initialised and exclusively ours; its device arrays hold num_* elements.
        unsafe { drop_private_scripts(cfg.as_mut_ptr(), &private) };
        self.config_to_json(&mut cfg, || Subject::Domain(domid))
    }

    /// A spec's libxl config as JSON, exactly what libxl would be handed for it.
    pub fn spec_json(&self, spec: &DomainSpec) -> Result<String> {
        let mut cfg = spec.to_libxl()?;
        self.config_to_json(&mut cfg, || Subject::Named(spec.name.clone()))
    }

    fn config_to_json(&self, cfg: &mut LibxlDomainConfig, subject: impl FnOnce() -> Subject) -> Result<String> {
        // SAFETY: ctx is live; cfg is initialised; the result is malloc'd and ours.
        let json = unsafe { xen_sys::libxl_domain_config_to_json(self.raw(), cfg.as_mut_ptr()) };
        // SAFETY: json is null or a malloc'd NUL-terminated string we now own.
        let json = unsafe { MallocString::from_raw(json) };
        json.map(|j| j.to_string_lossy()).ok_or_else(|| Error::Libxl {
            op: "convert the configuration to JSON",
            subject: subject(),
            code: crate::error::LibxlErrorCode::ERROR_FAIL,
        })
    }
}

/// Clears (to libxl's default) every vif and disk script of `cfg` that is one of `private`.
///
/// # Safety
/// `cfg` is an initialised config, exclusively the caller's, whose `nics` and `disks` arrays
/// hold `num_nics` and `num_disks` elements.
unsafe fn drop_private_scripts(cfg: *mut xen_sys::libxl_domain_config, private: &[String]) {
    if private.is_empty() {
        return;
    }
    let is_private = |script: *mut std::ffi::c_char| {
        // SAFETY: a non-null script is a NUL-terminated string libxl allocated.
        !script.is_null()
            && private.iter().any(|p| unsafe { std::ffi::CStr::from_ptr(script) }.to_bytes() == p.as_bytes())
    };
    // SAFETY: the caller's guarantee; each script is freed once and replaced by NULL.
    unsafe {
        let cfg = &mut *cfg;
        for i in 0..usize::try_from(cfg.num_nics).unwrap_or(0) {
            let nic = &mut *cfg.nics.add(i);
            if is_private(nic.script) {
                libc::free(nic.script.cast());
                nic.script = std::ptr::null_mut();
            }
        }
        for i in 0..usize::try_from(cfg.num_disks).unwrap_or(0) {
            let disk = &mut *cfg.disks.add(i);
            if is_private(disk.script) {
                libc::free(disk.script.cast());
                disk.script = std::ptr::null_mut();
            }
        }
    }
}

/// A `map_err` adapter: an I/O error on `path` during `op`.
fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { op, path: path.to_path_buf(), source }
}

/// Where [`Context::save`] writes an image before it is complete: `<path>.partial`.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<SaveImageHeader> {
        SaveImageHeader::parse(&mut &bytes[..], Path::new("img"))
    }

    #[test]
    fn header_round_trips() {
        let mut bytes = SaveImageHeader::encode(r#"{"c_info":{"name":"web"}}"#);
        let stream_at = bytes.len();
        bytes.extend_from_slice(b"libxl stream...");
        let h = read(&bytes).unwrap();
        assert_eq!(h.config_json.as_deref(), Some(r#"{"c_info":{"name":"web"}}"#));
        assert_eq!((h.stream_version, h.stream_offset), (2, stream_at as u64));
    }

    #[test]
    fn the_magic_is_xls_32_bytes() {
        assert_eq!(MAGIC.len(), 32);
        assert_eq!(&MAGIC[..27], b"Xen saved domain, xl format");
    }

    #[test]
    fn bad_headers_are_refused_with_a_reason() {
        let good = SaveImageHeader::encode("{}");
        assert!(read(&good[..20]).unwrap_err().to_string().contains("shorter than"));
        let mut wrong = good.clone();
        wrong[0] = b'Y';
        assert!(read(&wrong).unwrap_err().to_string().contains("wrong magic"));
        let mut flags = good.clone();
        flags[36..40].copy_from_slice(&(FLAG_JSON | 0x80).to_ne_bytes());
        assert!(read(&flags).unwrap_err().to_string().contains("mandatory flags"));
        let mut order = good.clone();
        order[32..36].copy_from_slice(&0x0403_0201u32.to_ne_bytes());
        assert!(read(&order).unwrap_err().to_string().contains("byte order"));
        assert!(read(&good[..good.len() - 1]).unwrap_err().to_string().contains("truncated"));
        let mut huge = good.clone();
        huge[44..48].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(read(&huge).unwrap_err().to_string().contains("implausibly large"));
        let mut overrun = good.clone();
        overrun[48..52].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(read(&overrun).unwrap_err().to_string().contains("runs past"));
    }

    #[test]
    fn an_image_without_config_is_readable() {
        let mut bytes = MAGIC.to_vec();
        for w in [BYTEORDER, FLAG_STREAM_V2, 0, 0] {
            bytes.extend_from_slice(&w.to_ne_bytes());
        }
        let h = read(&bytes).unwrap();
        assert_eq!((h.config_json, h.stream_offset), (None, 48));
    }

    #[test]
    fn partial_path_sits_beside_the_image() {
        assert_eq!(partial_path(Path::new("/var/lib/xen/save/web")), Path::new("/var/lib/xen/save/web.partial"));
    }
}
