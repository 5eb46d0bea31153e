//! [`SpiceSpec`]: an HVM guest's SPICE server, run by its device model (xl.cfg's `spice`,
//! `spiceport`, `spicetls_port`, `spicehost`, `spicedisable_ticketing`, `spicepasswd`,
//! `spiceagent_mouse`, `spicevdagent`, `spice_clipboard_sharing`, `spiceusbredirection`,
//! `spice_image_compression`, `spice_streaming_video`): read as xl reads them, put in libxl's
//! `u.hvm.spice`, written back as xl.cfg lines.

use serde::{Deserialize, Serialize};

use crate::devices::set_defbool;
use crate::error::Result;
use crate::raw;
use crate::xlcfg::quote;
use crate::xlread::Reader;

/// SPICE settings; `None` everywhere is libxl's default (no SPICE server).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpiceSpec {
    /// Run the server (`spice`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable: Option<bool>,
    /// Its plain port (`spiceport`); libxl wants this or `tls_port` with the server on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Its TLS port (`spicetls_port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_port: Option<i32>,
    /// The address it listens on (`spicehost`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Let clients in without a password (`spicedisable_ticketing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_ticketing: Option<bool>,
    /// The clients' password (`spicepasswd`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Mouse through the SPICE agent (`spiceagent_mouse`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_mouse: Option<bool>,
    /// A vdagent channel for the guest's agent (`spicevdagent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vdagent: Option<bool>,
    /// Clipboard sharing through the agent (`spice_clipboard_sharing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clipboard_sharing: Option<bool>,
    /// USB redirection channels (`spiceusbredirection`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usb_redirection: Option<i32>,
    /// Image compression, e.g. `auto_glz` (`spice_image_compression`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_compression: Option<String>,
    /// Video stream detection, e.g. `filter` (`spice_streaming_video`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streaming_video: Option<String>,
}

impl SpiceSpec {
    /// Whether nothing is set.
    pub fn is_default(&self) -> bool {
        *self == SpiceSpec::default()
    }

    /// Reads the SPICE keys (HVM guests' only).
    pub(crate) fn read(r: &mut Reader) -> Result<SpiceSpec> {
        // xl stores these longs in C ints; one that does not fit is refused rather than cut.
        let int = |r: &mut Reader, key: &str| r.number::<i32>(key, i64::from(i32::MIN));
        Ok(SpiceSpec {
            enable: r.flag("spice")?,
            port: int(r, "spiceport")?,
            tls_port: int(r, "spicetls_port")?,
            host: r.string("spicehost")?,
            disable_ticketing: r.flag("spicedisable_ticketing")?,
            password: r.string("spicepasswd")?,
            agent_mouse: r.flag("spiceagent_mouse")?,
            vdagent: r.flag("spicevdagent")?,
            clipboard_sharing: r.flag("spice_clipboard_sharing")?,
            usb_redirection: int(r, "spiceusbredirection")?,
            image_compression: r.string("spice_image_compression")?,
            streaming_video: r.string("spice_streaming_video")?,
        })
    }

    /// Fills libxl's `u.hvm.spice`.
    pub(crate) fn fill(&self, s: &mut xen_sys::libxl_spice_info) -> Result<()> {
        set_defbool(&mut s.enable, self.enable);
        if let Some(p) = self.port {
            s.port = p;
        }
        if let Some(p) = self.tls_port {
            s.tls_port = p;
        }
        s.host = raw::strdup_opt("display.spice.host", self.host.as_deref())?;
        set_defbool(&mut s.disable_ticketing, self.disable_ticketing);
        s.passwd = raw::strdup_opt("display.spice.password", self.password.as_deref())?;
        set_defbool(&mut s.agent_mouse, self.agent_mouse);
        set_defbool(&mut s.vdagent, self.vdagent);
        set_defbool(&mut s.clipboard_sharing, self.clipboard_sharing);
        if let Some(n) = self.usb_redirection {
            s.usbredirection = n;
        }
        s.image_compression = raw::strdup_opt("display.spice.image_compression", self.image_compression.as_deref())?;
        s.streaming_video = raw::strdup_opt("display.spice.streaming_video", self.streaming_video.as_deref())?;
        Ok(())
    }

    /// The xl.cfg lines that say this.
    pub(crate) fn xl_lines(&self) -> Vec<(&'static str, String)> {
        let flag = |key, v: Option<bool>| v.map(|v| (key, u8::from(v).to_string()));
        // libxlutil reads a bare number as digits only: a negative one goes in quotes.
        let int = |key, v: Option<i32>| v.map(|n| (key, if n < 0 { quote(&n.to_string()) } else { n.to_string() }));
        let string = |key, v: &Option<String>| v.as_deref().map(|s| (key, quote(s)));
        [
            flag("spice", self.enable),
            int("spiceport", self.port),
            int("spicetls_port", self.tls_port),
            string("spicehost", &self.host),
            flag("spicedisable_ticketing", self.disable_ticketing),
            string("spicepasswd", &self.password),
            flag("spiceagent_mouse", self.agent_mouse),
            flag("spicevdagent", self.vdagent),
            flag("spice_clipboard_sharing", self.clipboard_sharing),
            int("spiceusbredirection", self.usb_redirection),
            string("spice_image_compression", &self.image_compression),
            string("spice_streaming_video", &self.streaming_video),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}
