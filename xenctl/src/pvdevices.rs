//! The paravirtual devices beyond disks, vifs and the framebuffer: virtual channels
//! ([`ChannelSpec`], xl.cfg's `channel`), virtual TPMs ([`VtpmSpec`], `vtpm`), 9pfs shares
//! ([`P9Spec`], `p9`), PV calls interfaces ([`PvcallsSpec`], `pvcalls`) and extra virtual
//! keyboards ([`VkbSpec`], `vkb`): their validation, how they fill libxl's device arrays
//! (numbered as xl numbers them) and how they are written back as xl.cfg device specs. Reading
//! them from xl.cfg is in `pvdevices_xl.rs`. Each type is plain data with a constructor, so a
//! Rust caller (or an EVE config) builds them as easily as an xl.cfg file does.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::pvmedia::Item;
use crate::raw;
use crate::spec::DomainSpec;
use crate::xlcfg::{list, quote};

/// A virtual channel (xl.cfg's `channel`, xen-pv-channel(7)): a named, low-bandwidth byte
/// stream between the guest and a backend, for guest agents and the like. The guest sees it as
/// a PV console with this name.
///
/// ```
/// use xenctl::{ChannelSpec, DomainSpec};
/// let spec = DomainSpec::pv("web")
///     .kernel("/boot/vmlinuz")
///     .channel(ChannelSpec::socket("org.qemu.guest_agent.0", "/run/xen/web-agent.sock"))
///     .channel(ChannelSpec::pty("org.example.console.1").backend("driverdom"));
/// assert!(spec.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    /// The well-known name the guest looks the channel up by (e.g. `org.qemu.guest_agent.0`).
    pub name: String,
    /// What the backend connects the channel to.
    pub connection: ChannelConnection,
    /// The backend domain, by name or id; `None` for the toolstack domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_domain: Option<String>,
}

/// What a channel's backend connects it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelConnection {
    /// A pty (`xl channel-list` names it).
    Pty,
    /// A Unix socket the backend listens on, proxying whoever connects.
    Socket {
        /// Where the socket is bound.
        path: String,
    },
}

impl ChannelSpec {
    /// A channel connected to a pty in the toolstack domain.
    pub fn pty(name: impl Into<String>) -> ChannelSpec {
        ChannelSpec { name: name.into(), connection: ChannelConnection::Pty, backend_domain: None }
    }

    /// A channel connected to a listening Unix socket at `path` in the toolstack domain.
    pub fn socket(name: impl Into<String>, path: impl Into<String>) -> ChannelSpec {
        ChannelSpec {
            name: name.into(),
            connection: ChannelConnection::Socket { path: path.into() },
            backend_domain: None,
        }
    }

    /// Serves the channel from another domain (a name or a domain id).
    pub fn backend(mut self, domain: impl Into<String>) -> ChannelSpec {
        self.backend_domain = Some(domain.into());
        self
    }
}

/// A virtual TPM (xl.cfg's `vtpm`, xen-vtpm(7)), served by a vTPM stub domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VtpmSpec {
    /// The vTPM domain serving it (for a vTPM domain itself: the vTPM manager), by name or id.
    pub backend_domain: String,
    /// The device's UUID; `None` for a fresh one at every boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Uuid>,
}

impl VtpmSpec {
    /// A vTPM served by `backend_domain`, with a fresh UUID at every boot.
    pub fn new(backend_domain: impl Into<String>) -> VtpmSpec {
        VtpmSpec { backend_domain: backend_domain.into(), uuid: None }
    }

    /// Gives the vTPM a fixed UUID (needed for a vTPM domain's own device).
    pub fn uuid(mut self, uuid: Uuid) -> VtpmSpec {
        self.uuid = Some(uuid);
        self
    }
}

/// A filesystem shared with the guest over 9pfs (xl.cfg's `p9`): the backend (QEMU, in dom0
/// unless `backend_domain` says otherwise) exports `path`, and the guest mounts it by `tag`
/// (`mount -t 9p -o trans=xen TAG /mnt`).
///
/// ```
/// use xenctl::{DomainSpec, P9Spec};
/// let root = P9Spec::new("rootfs", "/var/lib/containers/web/rootfs", P9Spec::SECURITY_NONE);
/// let spec = DomainSpec::pvh("web").kernel("/usr/lib/domainmgrd/vmlinuz").p9(root);
/// assert_eq!(spec.p9s[0].tag, "rootfs");
/// assert!(spec.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P9Spec {
    /// The name the guest mounts the share by.
    pub tag: String,
    /// The directory exported, in the backend domain.
    pub path: String,
    /// How the backend maps the guest's file ownership and modes: QEMU's 9p `security_model`.
    /// Xen documents only [`P9Spec::SECURITY_NONE`]; xl and libxl pass any word on to QEMU.
    pub security_model: String,
    /// The backend domain, by name or id; `None` for dom0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_domain: Option<String>,
}

impl P9Spec {
    /// The security model Xen supports: files are stored with the credentials they have in the
    /// guest, without squashing or remapping.
    pub const SECURITY_NONE: &'static str = "none";

    /// A share of `path` mounted in the guest by `tag`, served from dom0.
    pub fn new(tag: impl Into<String>, path: impl Into<String>, security_model: impl Into<String>) -> P9Spec {
        P9Spec { tag: tag.into(), path: path.into(), security_model: security_model.into(), backend_domain: None }
    }

    /// Serves the share from another domain (a name or a domain id).
    pub fn backend(mut self, domain: impl Into<String>) -> P9Spec {
        self.backend_domain = Some(domain.into());
        self
    }
}

/// A PV calls interface (xl.cfg's `pvcalls`): POSIX socket calls forwarded to the backend, an
/// alternative to a vif.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PvcallsSpec {
    /// The backend domain, by name or id; `None` for dom0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_domain: Option<String>,
}

/// Which backend serves a virtual keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VkbBackend {
    /// QEMU's.
    Qemu,
    /// A Linux PV backend in a driver domain.
    Linux,
}

impl VkbBackend {
    /// The xl.cfg word (`backend-type=`).
    pub fn as_str(self) -> &'static str {
        match self {
            VkbBackend::Qemu => "qemu",
            VkbBackend::Linux => "linux",
        }
    }

    fn to_libxl(self) -> xen_sys::libxl_vkb_backend {
        match self {
            VkbBackend::Qemu => xen_sys::LIBXL_VKB_BACKEND_QEMU,
            VkbBackend::Linux => xen_sys::LIBXL_VKB_BACKEND_LINUX,
        }
    }
}

/// A virtual keyboard and pointer (xl.cfg's `vkb`), beyond the one every PV framebuffer gets.
/// Field names are libxl's (and the `kbdif` protocol's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VkbSpec {
    /// Which backend serves it.
    pub backend_type: VkbBackend,
    /// The backend domain, by name or id; `None` for dom0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_domain: Option<String>,
    /// The input device's unique id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    /// No keyboard.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub feature_disable_keyboard: bool,
    /// No pointer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub feature_disable_pointer: bool,
    /// The pointer can give absolute coordinates.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub feature_abs_pointer: bool,
    /// The pointer can give raw (unscaled) absolute coordinates.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub feature_raw_pointer: bool,
    /// A multi-touch device: set exactly when some `multi_touch_*` size is (as xl sets it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub feature_multi_touch: bool,
    /// The pointer's maximum width (0: the backend's default).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub width: u32,
    /// The pointer's maximum height (0: the backend's default).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub height: u32,
    /// The multi-touch device's maximum width.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub multi_touch_width: u32,
    /// The multi-touch device's maximum height.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub multi_touch_height: u32,
    /// The multi-touch device's maximum number of contacts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub multi_touch_num_contacts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl VkbSpec {
    /// A keyboard and pointer served by `backend_type` in dom0, every feature at its default.
    pub fn new(backend_type: VkbBackend) -> VkbSpec {
        VkbSpec {
            backend_type,
            backend_domain: None,
            unique_id: None,
            feature_disable_keyboard: false,
            feature_disable_pointer: false,
            feature_abs_pointer: false,
            feature_raw_pointer: false,
            feature_multi_touch: false,
            width: 0,
            height: 0,
            multi_touch_width: 0,
            multi_touch_height: 0,
            multi_touch_num_contacts: 0,
        }
    }

    /// Whether some multi-touch size is set.
    fn has_multi_touch_size(&self) -> bool {
        self.multi_touch_width != 0 || self.multi_touch_height != 0 || self.multi_touch_num_contacts != 0
    }

    /// xl's rule: a multi-touch device has a size, and a size makes a multi-touch device.
    pub(crate) fn multi_touch_problem(&self) -> Option<&'static str> {
        match (self.feature_multi_touch, self.has_multi_touch_size()) {
            (true, false) => {
                Some("multi-touch needs multi-touch-width, multi-touch-height or multi-touch-num-contacts")
            }
            (false, true) => Some("a multi-touch size needs feature_multi_touch (xl sets it for any size)"),
            _ => None,
        }
    }
}

impl DomainSpec {
    /// Adds a virtual channel.
    pub fn channel(mut self, channel: ChannelSpec) -> Self {
        self.channels.push(channel);
        self
    }
    /// Adds a virtual TPM.
    pub fn vtpm(mut self, vtpm: VtpmSpec) -> Self {
        self.vtpms.push(vtpm);
        self
    }
    /// Adds a 9pfs share.
    pub fn p9(mut self, share: P9Spec) -> Self {
        self.p9s.push(share);
        self
    }
    /// Adds a PV calls interface.
    pub fn pvcalls(mut self, pvcalls: PvcallsSpec) -> Self {
        self.pvcalls.push(pvcalls);
        self
    }
    /// Adds a virtual keyboard.
    pub fn vkb(mut self, vkb: VkbSpec) -> Self {
        self.vkbs.push(vkb);
        self
    }

    /// What libxl would refuse or silently change of these devices.
    pub(crate) fn validate_pv_devices(&self) -> Result<()> {
        for (i, vkb) in self.vkbs.iter().enumerate() {
            if let Some(problem) = vkb.multi_touch_problem() {
                return Err(Error::invalid(format!("vkbs[{i}].feature_multi_touch"), "", problem));
            }
        }
        self.validate_media()
    }

    /// Fills the config's channels, vTPMs, 9pfs shares, PV calls interfaces, and the vkbs after
    /// those the framebuffer brought, as xl fills them: each numbered by its position in its
    /// array (ARRAY_EXTEND_INIT in xl_parse.c), except 9pfs shares, which xl initialises a
    /// second time and so leaves to libxl to number.
    pub(crate) fn fill_pv_devices(&self, d: &mut xen_sys::libxl_domain_config) -> Result<()> {
        d.channels = raw::calloc_array(self.channels.len())?;
        d.num_channels = count(self.channels.len());
        for (i, c) in self.channels.iter().enumerate() {
            let field = format!("channels[{i}]");
            // SAFETY: channels holds num_channels zeroed (disposable) elements; each is
            // initialised once here before it is filled.
            let slot = unsafe { &mut *d.channels.add(i) };
            // SAFETY: slot is a valid element of the array.
            unsafe { xen_sys::libxl_device_channel_init(slot) };
            slot.devid = count(i);
            slot.name = raw::strdup(&format!("{field}.name"), &c.name)?;
            slot.backend_domname = raw::strdup_opt(&format!("{field}.backend"), c.backend_domain.as_deref())?;
            match &c.connection {
                // SAFETY: init_connection sets the union's key on a just-initialised channel
                // (whose key is still UNKNOWN, as it requires) and initialises that member.
                ChannelConnection::Pty => unsafe {
                    xen_sys::libxl_device_channel_init_connection(slot, xen_sys::LIBXL_CHANNEL_CONNECTION_PTY)
                },
                ChannelConnection::Socket { path } => {
                    // SAFETY: as above.
                    unsafe {
                        xen_sys::libxl_device_channel_init_connection(slot, xen_sys::LIBXL_CHANNEL_CONNECTION_SOCKET)
                    };
                    // The key is SOCKET, so `socket` is the union's live member, and the
                    // channel's dispose frees the path.
                    slot.u.socket.path = raw::strdup(&format!("{field}.path"), path)?;
                }
            }
        }

        d.vtpms = raw::calloc_array(self.vtpms.len())?;
        d.num_vtpms = count(self.vtpms.len());
        for (i, v) in self.vtpms.iter().enumerate() {
            // SAFETY: as for channels.
            let slot = unsafe { &mut *d.vtpms.add(i) };
            // SAFETY: slot is a valid element of the array.
            unsafe { xen_sys::libxl_device_vtpm_init(slot) };
            slot.devid = count(i);
            slot.backend_domname = raw::strdup(&format!("vtpms[{i}].backend"), &v.backend_domain)?;
            if let Some(uuid) = v.uuid {
                slot.uuid.uuid = *uuid.as_bytes();
            }
        }

        d.p9s = raw::calloc_array(self.p9s.len())?;
        d.num_p9s = count(self.p9s.len());
        for (i, p) in self.p9s.iter().enumerate() {
            let field = format!("p9s[{i}]");
            // SAFETY: as for channels.
            let slot = unsafe { &mut *d.p9s.add(i) };
            // SAFETY: slot is a valid element of the array. Its devid stays -1 (see above).
            unsafe { xen_sys::libxl_device_p9_init(slot) };
            slot.tag = raw::strdup(&format!("{field}.tag"), &p.tag)?;
            slot.path = raw::strdup(&format!("{field}.path"), &p.path)?;
            slot.security_model = raw::strdup(&format!("{field}.security_model"), &p.security_model)?;
            slot.backend_domname = raw::strdup_opt(&format!("{field}.backend"), p.backend_domain.as_deref())?;
        }

        d.pvcallsifs = raw::calloc_array(self.pvcalls.len())?;
        d.num_pvcallsifs = count(self.pvcalls.len());
        for (i, p) in self.pvcalls.iter().enumerate() {
            // SAFETY: as for channels.
            let slot = unsafe { &mut *d.pvcallsifs.add(i) };
            // SAFETY: slot is a valid element of the array.
            unsafe { xen_sys::libxl_device_pvcallsif_init(slot) };
            slot.devid = count(i);
            slot.backend_domname = raw::strdup_opt(&format!("pvcalls[{i}].backend"), p.backend_domain.as_deref())?;
        }

        self.fill_vkbs(d)?;
        self.fill_media(d)
    }

    /// Appends the vkbs to those already in `d` (a PV framebuffer's), numbered on from them, as
    /// xl reads `vkb` after `vfb`.
    fn fill_vkbs(&self, d: &mut xen_sys::libxl_domain_config) -> Result<()> {
        if self.vkbs.is_empty() {
            return Ok(());
        }
        let before = usize::try_from(d.num_vkbs).unwrap_or(0);
        let all = raw::calloc_array::<xen_sys::libxl_device_vkb>(before + self.vkbs.len())?;
        if before > 0 {
            // SAFETY: d.vkbs holds `before` initialised vkbs in a malloc'd array, and `all` has
            // room for them. They are moved bitwise (libxl structs hold only pointers they own,
            // none into themselves), and the old array is freed without disposing them, so each
            // is disposed exactly once, from its new place.
            unsafe {
                std::ptr::copy_nonoverlapping(d.vkbs, all, before);
                libc::free(d.vkbs.cast());
            }
        }
        // The rest of `all` is zeroed, which dispose accepts, so from here on the config owns
        // every element whatever fails.
        d.vkbs = all;
        d.num_vkbs = count(before + self.vkbs.len());
        for (i, v) in self.vkbs.iter().enumerate() {
            let field = format!("vkbs[{i}]");
            // SAFETY: before + i < num_vkbs; the slot is zeroed and initialised once here.
            let slot = unsafe { &mut *all.add(before + i) };
            // SAFETY: slot is a valid element of the array.
            unsafe { xen_sys::libxl_device_vkb_init(slot) };
            slot.devid = count(before + i);
            slot.backend_type = v.backend_type.to_libxl();
            slot.backend_domname = raw::strdup_opt(&format!("{field}.backend"), v.backend_domain.as_deref())?;
            slot.unique_id = raw::strdup_opt(&format!("{field}.unique_id"), v.unique_id.as_deref())?;
            slot.feature_disable_keyboard = v.feature_disable_keyboard;
            slot.feature_disable_pointer = v.feature_disable_pointer;
            slot.feature_abs_pointer = v.feature_abs_pointer;
            slot.feature_raw_pointer = v.feature_raw_pointer;
            slot.feature_multi_touch = v.feature_multi_touch;
            slot.width = v.width;
            slot.height = v.height;
            slot.multi_touch_width = v.multi_touch_width;
            slot.multi_touch_height = v.multi_touch_height;
            slot.multi_touch_num_contacts = v.multi_touch_num_contacts;
        }
        Ok(())
    }

    /// These devices (and `vdispl`, `vsnd`) as xl.cfg lines, key and value, for
    /// `to_xl_config`. Fails for what xl's syntax cannot carry (a comma in a value; for channels
    /// also `=`, and blanks at either end, which xl trims).
    pub(crate) fn pv_device_lines(&self) -> Result<Vec<(&'static str, String)>> {
        let mut lists: Vec<(&'static str, Vec<String>)> = Vec::new();
        if !self.channels.is_empty() {
            let items = self.channels.iter().enumerate().map(|(i, c)| channel_item(i, c)).collect::<Result<_>>()?;
            lists.push(("channel", items));
        }
        if !self.vtpms.is_empty() {
            let items = self
                .vtpms
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let mut parts = vec![value(&format!("vtpms[{i}].backend_domain"), "backend", &v.backend_domain)?];
                    parts.extend(v.uuid.map(|u| format!("uuid={u}")));
                    Ok(parts.join(","))
                })
                .collect::<Result<_>>()?;
            lists.push(("vtpm", items));
        }
        if !self.p9s.is_empty() {
            lists.push(("p9", self.p9_items()?));
        }
        if !self.pvcalls.is_empty() {
            let items = self
                .pvcalls
                .iter()
                .enumerate()
                .map(|(i, p)| match &p.backend_domain {
                    Some(b) => value(&format!("pvcalls[{i}].backend_domain"), "backend", b),
                    None => Ok(String::new()),
                })
                .collect::<Result<_>>()?;
            lists.push(("pvcalls", items));
        }
        if !self.vkbs.is_empty() {
            let items = self.vkbs.iter().enumerate().map(|(i, v)| vkb_item(i, v)).collect::<Result<_>>()?;
            lists.push(("vkb", items));
        }
        let mut out: Vec<(&'static str, String)> = lists.into_iter().map(|(key, items)| (key, list(&items))).collect();
        for (key, items) in self.media_items()? {
            let rendered: Vec<String> = items
                .iter()
                .map(|item| match item {
                    Item::One(s) => quote(s),
                    Item::List(l) => list(l),
                })
                .collect();
            out.push((key, format!("[ {} ]", rendered.join(", "))));
        }
        Ok(out)
    }

    fn p9_items(&self) -> Result<Vec<String>> {
        let mut items = Vec::new();
        let mut backend_before = false;
        for (i, p) in self.p9s.iter().enumerate() {
            let field = format!("p9s[{i}]");
            let mut parts = vec![
                value(&format!("{field}.tag"), "tag", &p.tag)?,
                value(&format!("{field}.path"), "path", &p.path)?,
                value(&format!("{field}.security_model"), "security_model", &p.security_model)?,
            ];
            match &p.backend_domain {
                Some(b) => {
                    parts.push(value(&format!("{field}.backend_domain"), "backend", b)?);
                    backend_before = true;
                }
                None if backend_before => {
                    // xl keeps a p9 item's values for the next item that lacks them.
                    return Err(Error::invalid(
                        format!("{field}.backend_domain"),
                        "",
                        "xl.cfg cannot give a share dom0 as its backend after one with another backend (xl \
                         would give it the earlier share's); list the dom0 shares first",
                    ));
                }
                None => {}
            }
            items.push(parts.join(","));
        }
        Ok(items)
    }
}

/// `key=value` in a spec xl splits on commas (and nothing else): the value cannot hold one.
fn value(field: &str, key: &str, value: &str) -> Result<String> {
    if value.contains(',') {
        return Err(Error::invalid(field, value, "a comma cannot be written in an xl device spec"));
    }
    Ok(format!("{key}={value}"))
}

fn channel_item(i: usize, c: &ChannelSpec) -> Result<String> {
    let field = format!("channels[{i}]");
    // xl splits a channel's options at every `=` and trims blanks around keys and values. An
    // empty value is written as one blank, which xl trims to the empty string (`key=` alone
    // is an error to xl).
    let pair = |name: &str, key: &str, v: &str| -> Result<String> {
        if v.contains([',', '=']) || v.trim_matches(c_isspace).len() != v.len() {
            return Err(Error::invalid(
                format!("{field}.{name}"),
                v,
                "a channel's values cannot hold `,' or `=', nor start or end with a blank, in xl.cfg",
            ));
        }
        Ok(if v.is_empty() { format!("{key}= ") } else { format!("{key}={v}") })
    };
    let mut parts = vec![pair("name", "name", &c.name)?];
    match &c.connection {
        ChannelConnection::Pty => parts.push("connection=pty".into()),
        ChannelConnection::Socket { path } => {
            parts.push("connection=socket".into());
            parts.push(pair("connection.path", "path", path)?);
        }
    }
    if let Some(b) = &c.backend_domain {
        parts.push(pair("backend_domain", "backend", b)?);
    }
    Ok(parts.join(","))
}

fn vkb_item(i: usize, v: &VkbSpec) -> Result<String> {
    let field = format!("vkbs[{i}]");
    let mut parts = vec![format!("backend-type={}", v.backend_type.as_str())];
    if let Some(b) = &v.backend_domain {
        parts.push(value(&format!("{field}.backend_domain"), "backend", b)?);
    }
    if let Some(u) = &v.unique_id {
        parts.push(value(&format!("{field}.unique_id"), "unique-id", u)?);
    }
    for (on, key) in [
        (v.feature_disable_keyboard, "feature-disable-keyboard"),
        (v.feature_disable_pointer, "feature-disable-pointer"),
        (v.feature_abs_pointer, "feature-abs-pointer"),
        (v.feature_raw_pointer, "feature-raw-pointer"),
        (v.feature_multi_touch, "feature-multi-touch"),
    ] {
        if on {
            parts.push(format!("{key}=1"));
        }
    }
    for (n, key) in [
        (v.width, "width"),
        (v.height, "height"),
        (v.multi_touch_width, "multi-touch-width"),
        (v.multi_touch_height, "multi-touch-height"),
        (v.multi_touch_num_contacts, "multi-touch-num-contacts"),
    ] {
        if n != 0 {
            parts.push(format!("{key}={n}"));
        }
    }
    Ok(parts.join(","))
}

/// C's `isspace` in the C locale, with which xl trims a channel's keys and values.
pub(crate) fn c_isspace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

fn count(n: usize) -> i32 {
    // Device counts come from Vecs the caller built; anything near i32::MAX would have failed
    // to allocate long before.
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
#[path = "pvdevices_tests.rs"]
pub(crate) mod tests;
