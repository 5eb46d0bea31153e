//! Virtual displays ([`VdisplSpec`], xl.cfg's `vdispl`) and sound cards ([`VsndSpec`],
//! `vsnd`), the PV display and sound frontends of the displif and sndif protocols: their
//! validation, how they fill libxl's device arrays (numbered by position, as xl numbers them)
//! and how they are written back as xl.cfg text. Reading them from xl.cfg is in
//! `pvmedia_xl.rs`; the other PV devices are in `pvdevices.rs`.

use std::ffi::CStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::raw;
use crate::spec::DomainSpec;

/// A virtual display (xl.cfg's `vdispl`): one or more connectors (virtual monitors), served
/// by a displif backend.
///
/// ```
/// use xenctl::{DomainSpec, VdisplConnector, VdisplSpec};
/// let display = VdisplSpec::new(vec![VdisplConnector::new("hdmi0", 1920, 1080)]).backend("gpudom");
/// assert!(DomainSpec::pvh("dash").kernel("/k").vdispl(display).validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VdisplSpec {
    /// The backend domain, by name or id; `None` for dom0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_domain: Option<String>,
    /// The backend may allocate the display buffers (displif's `be-alloc`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub be_alloc: bool,
    /// The connectors, at least one.
    pub connectors: Vec<VdisplConnector>,
}

/// One connector of a virtual display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VdisplConnector {
    /// Its unique id (no blanks, `,`, `:` or `;`).
    pub unique_id: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl VdisplConnector {
    /// A connector of `width` x `height` pixels.
    pub fn new(unique_id: impl Into<String>, width: u32, height: u32) -> VdisplConnector {
        VdisplConnector { unique_id: unique_id.into(), width, height }
    }
}

impl VdisplSpec {
    /// A display with these connectors, served from dom0.
    pub fn new(connectors: Vec<VdisplConnector>) -> VdisplSpec {
        VdisplSpec { backend_domain: None, be_alloc: false, connectors }
    }

    /// Serves the display from another domain (a name or a domain id).
    pub fn backend(mut self, domain: impl Into<String>) -> VdisplSpec {
        self.backend_domain = Some(domain.into());
        self
    }
}

/// A virtual sound card (xl.cfg's `vsnd`): PCM devices with streams, each level able to narrow
/// the stream parameters of the one above.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VsndSpec {
    /// The backend domain, by name or id; `None` for dom0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_domain: Option<String>,
    /// The card's short name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_name: Option<String>,
    /// The card's long name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_name: Option<String>,
    /// Stream parameters for the whole card.
    #[serde(default, skip_serializing_if = "VsndParams::is_unset")]
    pub params: VsndParams,
    /// The card's PCM devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pcms: Vec<VsndPcm>,
}

/// A PCM device of a virtual sound card.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VsndPcm {
    /// Its name within the card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Stream parameters for this device.
    #[serde(default, skip_serializing_if = "VsndParams::is_unset")]
    pub params: VsndParams,
    /// Its streams.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<VsndStream>,
}

/// A stream of a PCM device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VsndStream {
    /// Its unique id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    /// Playback or capture; `None` leaves it unset, as xl does without `type=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_type: Option<VsndStreamType>,
    /// Stream parameters for this stream.
    #[serde(default, skip_serializing_if = "VsndParams::is_unset")]
    pub params: VsndParams,
}

/// Which way a stream goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VsndStreamType {
    /// Playback (`type=p`).
    Playback,
    /// Capture (`type=c`).
    Capture,
}

impl VsndStreamType {
    fn as_xl(self) -> &'static str {
        match self {
            VsndStreamType::Playback => "p",
            VsndStreamType::Capture => "c",
        }
    }
}

/// Stream parameters (sndif's), at card, PCM or stream level; each unset by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VsndParams {
    /// Sample rates, Hz.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample_rates: Vec<u32>,
    /// Sample formats, by libxl's names in lower case (`s16_le`, `u8`, `f32_le`, `mu_law`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample_formats: Vec<String>,
    /// The minimum number of channels (0: unset).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub channels_min: u32,
    /// The maximum number of channels (0: unset).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub channels_max: u32,
    /// The largest buffer per stream, bytes (0: unset).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub buffer_size: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl VsndParams {
    /// Whether every parameter is unset.
    pub fn is_unset(&self) -> bool {
        self == &VsndParams::default()
    }

    fn validate(&self, field: &str) -> Result<()> {
        for (i, f) in self.sample_formats.iter().enumerate() {
            if pcm_format(f)?.is_none() {
                return Err(Error::invalid(
                    format!("{field}.sample_formats[{i}]"),
                    f,
                    "not one of libxl's sample formats in lower case (s8, u8, s16_le, ..., f32_le, f64_be, mu_law, a_law, ima_adpcm, mpeg, gsm)",
                ));
            }
        }
        Ok(())
    }

    fn fill_libxl(&self, field: &str, p: &mut xen_sys::libxl_vsnd_params) -> Result<()> {
        p.sample_rates = raw::calloc_array(self.sample_rates.len())?;
        p.num_sample_rates = count(self.sample_rates.len());
        for (i, &rate) in self.sample_rates.iter().enumerate() {
            // SAFETY: i < num_sample_rates, inside the allocation just made.
            unsafe { *p.sample_rates.add(i) = rate };
        }
        p.sample_formats = raw::calloc_array(self.sample_formats.len())?;
        p.num_sample_formats = count(self.sample_formats.len());
        for (i, name) in self.sample_formats.iter().enumerate() {
            let format = pcm_format(name)?
                .ok_or_else(|| Error::invalid(format!("{field}.sample_formats[{i}]"), name, "unknown sample format"))?;
            // SAFETY: as for the rates.
            unsafe { *p.sample_formats.add(i) = format };
        }
        p.channels_min = self.channels_min;
        p.channels_max = self.channels_max;
        p.buffer_size = self.buffer_size;
        Ok(())
    }

    /// The parameters as sndif options (`sample-rates=8000;44100,...`).
    fn xl_options(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.sample_rates.is_empty() {
            let rates: Vec<String> = self.sample_rates.iter().map(u32::to_string).collect();
            out.push(format!("sample-rates={}", rates.join(";")));
        }
        if !self.sample_formats.is_empty() {
            out.push(format!("sample-formats={}", self.sample_formats.join(";")));
        }
        for (n, key) in [
            (self.channels_min, "channels-min"),
            (self.channels_max, "channels-max"),
            (self.buffer_size, "buffer-size"),
        ] {
            if n != 0 {
                out.push(format!("{key}={n}"));
            }
        }
        out
    }
}

/// libxl's sample format for its lower-case name (as libxl prints it), or `None`.
pub(crate) fn pcm_format(name: &str) -> Result<Option<xen_sys::libxl_vsnd_pcm_format>> {
    let c = raw::c_string("sample format", name)?;
    let mut format: xen_sys::libxl_vsnd_pcm_format = 0;
    // SAFETY: c is a NUL-terminated string and format a valid out-parameter for the call.
    let rc = unsafe { xen_sys::libxl_vsnd_pcm_format_from_string(c.as_ptr(), &mut format) };
    if rc != 0 {
        return Ok(None);
    }
    // from_string ignores case; the canonical name is what to_string gives back.
    // SAFETY: to_string returns NULL or a static NUL-terminated string.
    let canonical = unsafe { xen_sys::libxl_vsnd_pcm_format_to_string(format) };
    // SAFETY: non-NULL: a static string.
    let same = !canonical.is_null() && unsafe { CStr::from_ptr(canonical) }.to_bytes() == name.as_bytes();
    Ok(same.then_some(format))
}

impl VsndSpec {
    /// A card with its name, served from dom0, without PCM devices yet.
    pub fn new(short_name: impl Into<String>) -> VsndSpec {
        VsndSpec { short_name: Some(short_name.into()), ..VsndSpec::default() }
    }
}

impl DomainSpec {
    /// Adds a virtual display.
    pub fn vdispl(mut self, display: VdisplSpec) -> Self {
        self.vdispls.push(display);
        self
    }
    /// Adds a virtual sound card.
    pub fn vsnd(mut self, card: VsndSpec) -> Self {
        self.vsnds.push(card);
        self
    }

    pub(crate) fn validate_media(&self) -> Result<()> {
        for (i, d) in self.vdispls.iter().enumerate() {
            if d.connectors.is_empty() {
                return Err(Error::invalid(format!("vdispls[{i}].connectors"), "", "a display needs a connector"));
            }
            for (j, c) in d.connectors.iter().enumerate() {
                let bad = c.unique_id.is_empty() || c.unique_id.contains([',', ':', ';']);
                if bad || c.unique_id.contains(char::is_whitespace) {
                    return Err(Error::invalid(
                        format!("vdispls[{i}].connectors[{j}].unique_id"),
                        &c.unique_id,
                        "a connector id is not empty and has no blank, `,', `:' or `;'",
                    ));
                }
            }
        }
        for (i, card) in self.vsnds.iter().enumerate() {
            let field = format!("vsnds[{i}]");
            card.params.validate(&format!("{field}.params"))?;
            for (j, pcm) in card.pcms.iter().enumerate() {
                pcm.params.validate(&format!("{field}.pcms[{j}].params"))?;
                for (k, stream) in pcm.streams.iter().enumerate() {
                    stream.params.validate(&format!("{field}.pcms[{j}].streams[{k}].params"))?;
                }
            }
        }
        Ok(())
    }

    /// Fills the config's vdispls and vsnds, each numbered by its position.
    pub(crate) fn fill_media(&self, d: &mut xen_sys::libxl_domain_config) -> Result<()> {
        d.vdispls = raw::calloc_array(self.vdispls.len())?;
        d.num_vdispls = count(self.vdispls.len());
        for (i, v) in self.vdispls.iter().enumerate() {
            let field = format!("vdispls[{i}]");
            // SAFETY: vdispls holds num_vdispls zeroed (disposable) elements; each is
            // initialised once here before it is filled.
            let slot = unsafe { &mut *d.vdispls.add(i) };
            // SAFETY: slot is a valid element of the array.
            unsafe { xen_sys::libxl_device_vdispl_init(slot) };
            slot.devid = count(i);
            slot.backend_domname = raw::strdup_opt(&format!("{field}.backend"), v.backend_domain.as_deref())?;
            slot.be_alloc = v.be_alloc;
            slot.connectors = raw::calloc_array(v.connectors.len())?;
            slot.num_connectors = count(v.connectors.len());
            for (j, c) in v.connectors.iter().enumerate() {
                // SAFETY: as above, for the connectors array just made.
                let conn = unsafe { &mut *slot.connectors.add(j) };
                // SAFETY: conn is a valid element of the array.
                unsafe { xen_sys::libxl_connector_param_init(conn) };
                conn.unique_id = raw::strdup(&format!("{field}.connectors[{j}]"), &c.unique_id)?;
                conn.width = c.width;
                conn.height = c.height;
            }
        }

        d.vsnds = raw::calloc_array(self.vsnds.len())?;
        d.num_vsnds = count(self.vsnds.len());
        for (i, card) in self.vsnds.iter().enumerate() {
            let field = format!("vsnds[{i}]");
            // SAFETY: as for vdispls.
            let slot = unsafe { &mut *d.vsnds.add(i) };
            // SAFETY: slot is a valid element of the array.
            unsafe { xen_sys::libxl_device_vsnd_init(slot) };
            slot.devid = count(i);
            slot.backend_domname = raw::strdup_opt(&format!("{field}.backend"), card.backend_domain.as_deref())?;
            slot.short_name = raw::strdup_opt(&format!("{field}.short_name"), card.short_name.as_deref())?;
            slot.long_name = raw::strdup_opt(&format!("{field}.long_name"), card.long_name.as_deref())?;
            card.params.fill_libxl(&format!("{field}.params"), &mut slot.params)?;
            slot.pcms = raw::calloc_array(card.pcms.len())?;
            slot.num_vsnd_pcms = count(card.pcms.len());
            for (j, pcm) in card.pcms.iter().enumerate() {
                let field = format!("{field}.pcms[{j}]");
                // SAFETY: as for vdispls, for the pcms array just made.
                let p = unsafe { &mut *slot.pcms.add(j) };
                // SAFETY: p is a valid element of the array.
                unsafe { xen_sys::libxl_vsnd_pcm_init(p) };
                p.name = raw::strdup_opt(&format!("{field}.name"), pcm.name.as_deref())?;
                pcm.params.fill_libxl(&format!("{field}.params"), &mut p.params)?;
                p.streams = raw::calloc_array(pcm.streams.len())?;
                p.num_vsnd_streams = count(pcm.streams.len());
                for (k, stream) in pcm.streams.iter().enumerate() {
                    let field = format!("{field}.streams[{k}]");
                    // SAFETY: as for vdispls, for the streams array just made.
                    let s = unsafe { &mut *p.streams.add(k) };
                    // SAFETY: s is a valid element of the array.
                    unsafe { xen_sys::libxl_vsnd_stream_init(s) };
                    s.unique_id = raw::strdup_opt(&format!("{field}.unique_id"), stream.unique_id.as_deref())?;
                    s.type_ = match stream.stream_type {
                        None => 0,
                        Some(VsndStreamType::Playback) => xen_sys::LIBXL_VSND_STREAM_TYPE_P,
                        Some(VsndStreamType::Capture) => xen_sys::LIBXL_VSND_STREAM_TYPE_C,
                    };
                    stream.params.fill_libxl(&format!("{field}.params"), &mut s.params)?;
                }
            }
        }
        Ok(())
    }

    /// The `vdispl` and `vsnd` items as xl.cfg text (each a quoted string, a `vsnd` card a list
    /// of them). Fails for a comma in a value, which xl's syntax cannot carry.
    pub(crate) fn media_items(&self) -> Result<Vec<(&'static str, Vec<Item>)>> {
        let mut out = Vec::new();
        if !self.vdispls.is_empty() {
            let items =
                self.vdispls.iter().enumerate().map(|(i, v)| vdispl_item(i, v).map(Item::One)).collect::<Result<_>>();
            out.push(("vdispl", items?));
        }
        if !self.vsnds.is_empty() {
            let items =
                self.vsnds.iter().enumerate().map(|(i, c)| vsnd_items(i, c).map(Item::List)).collect::<Result<_>>();
            out.push(("vsnd", items?));
        }
        Ok(out)
    }
}

/// An item of an xl.cfg list: a string, or (`vsnd`) a list of strings.
pub(crate) enum Item {
    One(String),
    List(Vec<String>),
}

fn no_comma(field: &str, key: &str, value: &str) -> Result<String> {
    if value.contains(',') {
        return Err(Error::invalid(field, value, "a comma cannot be written in an xl device spec"));
    }
    Ok(format!("{key}={value}"))
}

fn vdispl_item(i: usize, v: &VdisplSpec) -> Result<String> {
    let mut parts = Vec::new();
    if let Some(b) = &v.backend_domain {
        parts.push(no_comma(&format!("vdispls[{i}].backend_domain"), "backend", b)?);
    }
    if v.be_alloc {
        parts.push("be-alloc=1".into());
    }
    // validate() keeps `,:;' and blanks out of the ids.
    let connectors: Vec<String> =
        v.connectors.iter().map(|c| format!("{}:{}x{}", c.unique_id, c.width, c.height)).collect();
    parts.push(format!("connectors={}", connectors.join(";")));
    Ok(parts.join(","))
}

/// A card as the items xl reads it from: `CARD` with the card's options, then each PCM and
/// after it its streams (a STREAM item belongs to the PCM before it).
fn vsnd_items(i: usize, c: &VsndSpec) -> Result<Vec<String>> {
    let field = format!("vsnds[{i}]");
    let mut card = vec!["CARD".to_string()];
    for (name, key, v) in [
        ("backend_domain", "backend", &c.backend_domain),
        ("short_name", "short-name", &c.short_name),
        ("long_name", "long-name", &c.long_name),
    ] {
        if let Some(v) = v {
            card.push(no_comma(&format!("{field}.{name}"), key, v)?);
        }
    }
    card.extend(c.params.xl_options());
    let mut items = vec![card.join(",")];
    for (j, pcm) in c.pcms.iter().enumerate() {
        let mut p = vec!["PCM".to_string()];
        if let Some(name) = &pcm.name {
            p.push(no_comma(&format!("{field}.pcms[{j}].name"), "name", name)?);
        }
        p.extend(pcm.params.xl_options());
        items.push(p.join(","));
        for (k, stream) in pcm.streams.iter().enumerate() {
            let mut s = vec!["STREAM".to_string()];
            if let Some(id) = &stream.unique_id {
                s.push(no_comma(&format!("{field}.pcms[{j}].streams[{k}].unique_id"), "unique-id", id)?);
            }
            s.extend(stream.stream_type.map(|t| format!("type={}", t.as_xl())));
            s.extend(stream.params.xl_options());
            items.push(s.join(","));
        }
    }
    Ok(items)
}

fn count(n: usize) -> i32 {
    // Device counts come from Vecs the caller built; anything near i32::MAX would have failed
    // to allocate long before.
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
#[path = "pvmedia_tests.rs"]
mod tests;
