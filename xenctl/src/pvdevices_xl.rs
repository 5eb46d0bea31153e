//! Reading xl.cfg's `channel`, `vtpm`, `p9`, `pvcalls` and `vkb` lists (and, through
//! `pvmedia_xl.rs`, `vdispl` and `vsnd`) the way xl 4.17 reads
//! them (parse_config_data and parse_vkb_list in tools/xl/xl_parse.c), into the types of
//! `pvdevices.rs`. xl's own quirks are kept where they decide what a file means: a 9pfs item
//! takes the values an earlier item gave and it lacks, a channel's keys and values are trimmed,
//! a vkb number is C's `strtoul` with base 0, a list key given a single string is ignored with
//! a warning. Where xl silently drops part of a spec (an option without `=` ends a vtpm, p9 or
//! pvcalls spec; a second `=` cuts a channel's value short; `width=abc` is 0) this refuses the
//! spec and says why; where xl warns and carries on (an unknown channel option) this warns.

use std::ffi::CString;

use uuid::Uuid;

use crate::error::Result;
use crate::pvdevices::{ChannelConnection, ChannelSpec, P9Spec, PvcallsSpec, VkbBackend, VkbSpec, VtpmSpec, c_isspace};
use crate::spec::DomainSpec;
use crate::xlread::Reader;

/// Reads the PV device lists into `spec`. xl reads each for every guest type.
pub(crate) fn read_pv_devices(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    let mut warnings = Vec::new();
    for (i, item) in r.list_or_ignore("channel")?.unwrap_or_default().iter().enumerate() {
        let channel =
            channel_from_xl(item, &mut warnings).map_err(|e| r.item_err("channel", i, format!("{item:?}: {e}")))?;
        warn_all(r, "channel", i, &mut warnings);
        spec.channels.push(channel);
    }
    for (i, item) in r.list_or_ignore("vtpm")?.unwrap_or_default().iter().enumerate() {
        spec.vtpms.push(vtpm_from_xl(item).map_err(|e| r.item_err("vtpm", i, format!("{item:?}: {e}")))?);
    }
    let mut carried = P9Carry::default();
    for (i, item) in r.list_or_ignore("p9")?.unwrap_or_default().iter().enumerate() {
        let share = carried.next(item, &mut warnings).map_err(|e| r.item_err("p9", i, format!("{item:?}: {e}")))?;
        warn_all(r, "p9", i, &mut warnings);
        spec.p9s.push(share);
    }
    for (i, item) in r.list_or_ignore("pvcalls")?.unwrap_or_default().iter().enumerate() {
        spec.pvcalls.push(pvcalls_from_xl(item).map_err(|e| r.item_err("pvcalls", i, format!("{item:?}: {e}")))?);
    }
    for (i, item) in r.list_or_ignore("vkb")?.unwrap_or_default().iter().enumerate() {
        spec.vkbs.push(vkb_from_xl(item).map_err(|e| r.item_err("vkb", i, format!("{item:?}: {e}")))?);
    }
    crate::pvmedia_xl::read_media(r, spec)
}

fn warn_all(r: &Reader, key: &str, index: usize, warnings: &mut Vec<String>) {
    let line = r.lines().item_line(key, index).or_else(|| r.lines().line(key));
    let at = line.map_or_else(|| r.source().to_string(), |l| format!("{}:{l}", r.source()));
    for w in warnings.drain(..) {
        log::warn!("{at}: {key}[{index}]: {w}");
    }
}

/// A channel spec (`name=N,connection=pty|socket[,path=P][,backend=D]`) as xl reads it: split
/// at commas, each option at `=`, keys and values trimmed of blanks; an unknown key is ignored
/// with a warning, as is `path=` for a pty.
pub(crate) fn channel_from_xl(spec: &str, warnings: &mut Vec<String>) -> std::result::Result<ChannelSpec, String> {
    let mut name = None;
    let mut backend = None;
    let mut path = None;
    let mut connection = None;
    let options: Vec<&str> = spec.split(',').filter(|o| !o.is_empty()).collect();
    if options.is_empty() {
        return Err("an empty channel spec (xl crashes on it)".into());
    }
    for option in options {
        // xl's split_string_into_pair: the text before the first run of `=' and the text up to
        // the next; anything after a second `=' is dropped.
        let (key, value) = match option.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() && !v.contains('=') => (k, v),
            Some((k, v)) if !k.is_empty() && v.contains('=') => {
                return Err(format!("`{option}': a channel value cannot hold `=' (xl would cut it short)"));
            }
            _ => return Err(format!("`{option}' is not KEY=VALUE")),
        };
        let (key, value) = (key.trim_matches(c_isspace), value.trim_matches(c_isspace).to_string());
        match key {
            "backend" => backend = Some(value),
            "name" => name = Some(value),
            "path" => path = Some(value),
            "connection" => {
                connection = Some(match value.as_str() {
                    "pty" => ConnectionKind::Pty,
                    "socket" => ConnectionKind::Socket,
                    _ => return Err(format!("connection={value}: expected pty or socket")),
                })
            }
            _ => warnings.push(format!("unknown channel option `{key}', ignored, as xl ignores it")),
        }
    }
    let connection = match connection {
        None => return Err("needs connection=pty or connection=socket".into()),
        Some(ConnectionKind::Socket) => {
            ChannelConnection::Socket { path: path.ok_or("connection=socket needs path=, where to bind the socket")? }
        }
        Some(ConnectionKind::Pty) => {
            if path.is_some() {
                warnings.push("path= means nothing for connection=pty; ignored, as xl ignores it".into());
            }
            ChannelConnection::Pty
        }
    };
    // xl -N prints a channel without a name, but libxl refuses to create it.
    let name = name.ok_or("needs name=, which the guest finds the channel by (libxl refuses a channel without one)")?;
    Ok(ChannelSpec { name, connection, backend_domain: backend })
}

enum ConnectionKind {
    Pty,
    Socket,
}

/// The KEY=VALUE options of a vtpm, p9 or pvcalls spec as xl's strtok loop reads them: split
/// at commas (empty options skipped), leading spaces dropped, each split at its first `=`.
/// xl stops reading a spec at an option without `=`; that is refused unless only blanks follow.
fn options_of(spec: &str) -> std::result::Result<Vec<(&str, &str)>, String> {
    let tokens: Vec<&str> = spec.split(',').filter(|t| !t.is_empty()).map(|t| t.trim_start_matches(' ')).collect();
    let mut out = Vec::new();
    for (n, token) in tokens.iter().enumerate() {
        match token.split_once('=') {
            Some(pair) => out.push(pair),
            None if tokens[n..].iter().all(|t| t.is_empty()) => break,
            None => return Err(format!("`{token}' is not KEY=VALUE (xl would ignore it and the rest of the spec)")),
        }
    }
    Ok(out)
}

/// A vtpm spec (`backend=D[,uuid=U]`); the backend is required.
pub(crate) fn vtpm_from_xl(spec: &str) -> std::result::Result<VtpmSpec, String> {
    let mut vtpm = VtpmSpec::new("");
    let mut backend = false;
    for (key, value) in options_of(spec)? {
        match key {
            "backend" => {
                vtpm.backend_domain = value.to_string();
                backend = true;
            }
            // A nil UUID is libxl's "none": it makes one up at create.
            "uuid" => vtpm.uuid = Some(uuid_from_xl(value)?).filter(|u| !u.is_nil()),
            _ => return Err(format!("unknown option `{key}' (expected backend or uuid)")),
        }
    }
    if !backend {
        return Err("needs backend=, the vTPM domain".into());
    }
    Ok(vtpm)
}

/// A UUID as xl reads it, with libxl's own parser (libuuid's uuid_parse).
fn uuid_from_xl(text: &str) -> std::result::Result<Uuid, String> {
    let bad = || format!("uuid={text}: not a UUID (xl takes only the form 6ba7b810-9dad-11d1-80b4-00c04fd430c8)");
    let c = CString::new(text).map_err(|_| bad())?;
    let mut uuid = xen_sys::libxl_uuid { uuid: [0; 16] };
    // SAFETY: uuid is a valid out-parameter; c is a NUL-terminated string alive for the call.
    // libxl_uuid_from_string only parses the text into it.
    let rc = unsafe { xen_sys::libxl_uuid_from_string(&mut uuid, c.as_ptr()) };
    if rc == 0 { Ok(Uuid::from_bytes(uuid.uuid)) } else { Err(bad()) }
}

/// The values of the last 9pfs item: xl keeps them in variables shared by all items, so an
/// item that lacks one (even the required tag, path and security model) gets the earlier one.
#[derive(Default)]
struct P9Carry {
    tag: Option<String>,
    path: Option<String>,
    security_model: Option<String>,
    backend: Option<String>,
}

impl P9Carry {
    /// The next item (`tag=T,path=P,security_model=M[,backend=D]`).
    fn next(&mut self, spec: &str, warnings: &mut Vec<String>) -> std::result::Result<P9Spec, String> {
        let mut given = Vec::new();
        for (key, value) in options_of(spec)? {
            let slot = match key {
                "tag" => &mut self.tag,
                "path" => &mut self.path,
                "security_model" => &mut self.security_model,
                "backend" => &mut self.backend,
                _ => return Err(format!("unknown option `{key}' (expected tag, path, security_model or backend)")),
            };
            *slot = Some(value.to_string());
            given.push(key);
        }
        let (Some(tag), Some(path), Some(security_model)) = (&self.tag, &self.path, &self.security_model) else {
            let missing: Vec<&str> =
                [("tag", &self.tag), ("path", &self.path), ("security_model", &self.security_model)]
                    .iter()
                    .filter(|(_, v)| v.is_none())
                    .map(|(k, _)| *k)
                    .collect();
            return Err(format!("needs tag=, path= and security_model= (missing: {})", missing.join(", ")));
        };
        let taken: Vec<&str> =
            [("tag", true), ("path", true), ("security_model", true), ("backend", self.backend.is_some())]
                .iter()
                .filter(|(k, set)| *set && !given.contains(k))
                .map(|(k, _)| *k)
                .collect();
        if !taken.is_empty() {
            warnings.push(format!("takes {} from the item before, as xl does", taken.join(", ")));
        }
        let share = P9Spec::new(tag.as_str(), path.as_str(), security_model.as_str());
        Ok(P9Spec { backend_domain: self.backend.clone(), ..share })
    }
}

/// A pvcalls spec (`backend=D`, or empty for dom0).
pub(crate) fn pvcalls_from_xl(spec: &str) -> std::result::Result<PvcallsSpec, String> {
    let mut pvcalls = PvcallsSpec::default();
    for (key, value) in options_of(spec)? {
        match key {
            "backend" => pvcalls.backend_domain = Some(value.to_string()),
            _ => return Err(format!("unknown option `{key}' (expected backend)")),
        }
    }
    Ok(pvcalls)
}

/// A vkb spec (`backend-type=qemu|linux[,backend=D][,unique-id=ID][,feature-...=N][,width=N]...`)
/// as parse_vkb_config reads it. A multi-touch size turns multi-touch on, and multi-touch needs
/// a size.
pub(crate) fn vkb_from_xl(spec: &str) -> std::result::Result<VkbSpec, String> {
    let mut backend_type = None;
    let mut vkb = VkbSpec::new(VkbBackend::Qemu);
    for token in spec.split(',').filter(|t| !t.is_empty()).map(|t| t.trim_start_matches(' ')) {
        let Some((key, value)) = token.split_once('=') else {
            return Err(format!("unknown option `{token}'"));
        };
        let flag = || c_unsigned(value).map(|n| n != 0).ok_or_else(|| format!("{key}={value}: expected 0 or 1"));
        let size = || {
            let n = c_unsigned(value).ok_or_else(|| format!("{key}={value}: not a number"))?;
            u32::try_from(n).map_err(|_| format!("{key}={value}: more than {}", u32::MAX))
        };
        match key {
            "backend" => vkb.backend_domain = Some(value.to_string()),
            "backend-type" => {
                // libxl's enum names, case-insensitive; "unknown" is a name too, and unsets it.
                backend_type = match value.to_ascii_lowercase().as_str() {
                    "qemu" => Some(VkbBackend::Qemu),
                    "linux" => Some(VkbBackend::Linux),
                    "unknown" => None,
                    _ => return Err(format!("backend-type={value}: expected qemu or linux")),
                }
            }
            "unique-id" => vkb.unique_id = Some(value.to_string()),
            "feature-disable-keyboard" => vkb.feature_disable_keyboard = flag()?,
            "feature-disable-pointer" => vkb.feature_disable_pointer = flag()?,
            "feature-abs-pointer" => vkb.feature_abs_pointer = flag()?,
            "feature-raw-pointer" => vkb.feature_raw_pointer = flag()?,
            "feature-multi-touch" => vkb.feature_multi_touch = flag()?,
            "multi-touch-width" => vkb.multi_touch_width = size()?,
            "multi-touch-height" => vkb.multi_touch_height = size()?,
            "multi-touch-num-contacts" => vkb.multi_touch_num_contacts = size()?,
            "width" => vkb.width = size()?,
            "height" => vkb.height = size()?,
            _ => return Err(format!("unknown option `{token}'")),
        }
    }
    vkb.backend_type = backend_type.ok_or("needs backend-type=qemu or backend-type=linux")?;
    if vkb.multi_touch_width != 0 || vkb.multi_touch_height != 0 || vkb.multi_touch_num_contacts != 0 {
        vkb.feature_multi_touch = true;
    }
    match vkb.multi_touch_problem() {
        Some(problem) => Err(problem.into()),
        None => Ok(vkb),
    }
}

/// A number as C's `strtoul(text, NULL, 0)` reads one (`0x` hex, leading-`0` octal, else
/// decimal; blanks around it), but only when it reads the whole text: where strtoul would stop
/// early or wrap a negative, xl silently takes what it read, and this refuses the value.
pub(crate) fn c_unsigned(text: &str) -> Option<u64> {
    let t = text.trim_matches(c_isspace);
    let t = t.strip_prefix('+').unwrap_or(t);
    let (digits, radix) = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (hex, 16)
    } else if t.len() > 1 && t.starts_with('0') {
        (&t[1..], 8)
    } else {
        (t, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}
