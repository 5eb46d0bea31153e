//! Global settings, by EVE's keys, from a JSON file and `--config=key:value` flags.
//!
//! The file may be EVE's own `ConfigItemValueMap` (`{"GlobalSettings": {"timer.boot.retry":
//! {"IntValue": 600, ...}, ...}}`, whose many other keys are ignored), or a flat object of our
//! keys (`{"timer.boot.retry": 600}`, where an unknown key is an error, to catch typos). Flags
//! override the file. Every error names where the value came from, the key and the value.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// The settings the daemon uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `timer.boot.retry`: wait before booting again a domain that failed to boot, halted or
    /// crashed while still wanted (EVE's key; default 600 s).
    pub boot_retry: Duration,
    /// `timer.domain.shutdown`: how long a guest gets to shut down gracefully before the ACPI
    /// power button, then destroy (default 60 s).
    pub shutdown_timeout: Duration,
    /// `timer.domain.destroy`: how long a destroyed domain may take to disappear before it is
    /// reported BROKEN (default 30 s).
    pub destroy_timeout: Duration,
    /// `timer.domain.poll`: the safety-net check of each domain, in case an event was missed
    /// (default 60 s). Events, not this, drive the lifecycle.
    pub poll_interval: Duration,
    /// `timer.metric.interval`: EVE's metrics interval (default 60 s).
    pub metric_interval: Duration,
    /// `debug.enable.usb`: keep USB controllers in dom0 with the USB keyboard, mouse and
    /// storage modules loaded (EVE's key; default true, as EVE's `types/global.go` has it:
    /// a console keyboard works until the controller says otherwise).
    pub enable_usb: bool,
    /// `debug.enable.console`: a login on the host's console (EVE's key, default true; see
    /// getty.rs).
    pub enable_console: bool,
    /// `process.cloud-init.multipart`: lay out multipart cloud-init user data as files on every
    /// app's config disk, not only for `MetaDataType` 3 (EVE's key; default false).
    pub process_cloud_init_multipart: bool,
    /// `debug.enable.vga`: keep the boot VGA adapter in dom0 while no domain uses it, for
    /// dom0's console (EVE's key; default true, as EVE's `types/global.go` has it).
    pub enable_vga: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            boot_retry: Duration::from_secs(600),
            shutdown_timeout: Duration::from_secs(60),
            destroy_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(60),
            metric_interval: Duration::from_secs(60),
            enable_usb: true,
            enable_console: true,
            process_cloud_init_multipart: false,
            enable_vga: true,
        }
    }
}

/// A settings value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{origin}: {key} = {value}: {reason}")]
pub struct SettingsError {
    /// The file, or `--config`.
    pub origin: String,
    /// The key.
    pub key: String,
    /// The value as given.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

/// The longest duration any setting, host setting or request may give, seconds (a year): far
/// beyond any real use, and far from where adding it to a clock could overflow.
pub const MAX_SECONDS: u64 = 86_400 * 365;

/// Every key we know, for `--help` and error messages.
pub const KEYS: [&str; 9] = [
    "timer.boot.retry",
    "timer.domain.shutdown",
    "timer.domain.destroy",
    "timer.domain.poll",
    "timer.metric.interval",
    "debug.enable.usb",
    "debug.enable.console",
    "process.cloud-init.multipart",
    "debug.enable.vga",
];

impl Settings {
    /// Sets one key from a JSON value.
    fn set(&mut self, origin: &str, key: &str, value: &Value) -> Result<(), SettingsError> {
        let err = |reason: &str| SettingsError {
            origin: origin.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let seconds = || -> Result<Duration, SettingsError> {
            let n = match value {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse::<u64>().ok(),
                _ => None,
            }
            .ok_or_else(|| err("expected a whole number of seconds"))?;
            if n == 0 || n > MAX_SECONDS {
                return Err(err("must be between 1 second and a year"));
            }
            Ok(Duration::from_secs(n))
        };
        let boolean = || -> Result<bool, SettingsError> {
            match value {
                Value::Bool(b) => Ok(*b),
                Value::String(s) if s == "true" => Ok(true),
                Value::String(s) if s == "false" => Ok(false),
                _ => Err(err("expected true or false")),
            }
        };
        match key {
            "timer.boot.retry" => self.boot_retry = seconds()?,
            "timer.domain.shutdown" => self.shutdown_timeout = seconds()?,
            "timer.domain.destroy" => self.destroy_timeout = seconds()?,
            "timer.domain.poll" => self.poll_interval = seconds()?,
            "timer.metric.interval" => self.metric_interval = seconds()?,
            "debug.enable.usb" => self.enable_usb = boolean()?,
            "debug.enable.console" => self.enable_console = boolean()?,
            "process.cloud-init.multipart" => self.process_cloud_init_multipart = boolean()?,
            "debug.enable.vga" => self.enable_vga = boolean()?,
            _ => return Err(err(&format!("unknown key; known keys: {}", KEYS.join(", ")))),
        }
        Ok(())
    }

    /// Applies a settings file (EVE's ConfigItemValueMap or a flat object of our keys).
    pub fn apply_file(&mut self, path: &Path) -> Result<(), SettingsError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SettingsError {
            origin: origin.clone(),
            key: String::new(),
            value: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        self.apply_json(&origin, &text)
    }

    /// Applies settings JSON; `origin` names it in errors.
    pub fn apply_json(&mut self, origin: &str, text: &str) -> Result<(), SettingsError> {
        let whole = |reason: String| SettingsError {
            origin: origin.to_string(),
            key: String::new(),
            value: String::new(),
            reason,
        };
        let json: Value = serde_json::from_str(text).map_err(|e| whole(format!("not JSON: {e}")))?;
        let Value::Object(map) = json else {
            return Err(whole("expected a JSON object".into()));
        };
        if let Some(global) = map.get("GlobalSettings") {
            // EVE's ConfigItemValueMap: take our keys, ignore the rest.
            let Value::Object(items) = global else {
                return Err(whole("GlobalSettings is not an object".into()));
            };
            for key in KEYS {
                if let Some(item) = items.get(key) {
                    let boolean = key.starts_with("debug.") || key == "process.cloud-init.multipart";
                    let field = if boolean { "BoolValue" } else { "IntValue" };
                    let value = item.get(field).cloned().unwrap_or(Value::Null);
                    self.set(origin, key, &value)?;
                }
            }
            return Ok(());
        }
        for (key, value) in &map {
            self.set(origin, key, value)?;
        }
        Ok(())
    }

    /// Applies one `--config=key:value` flag.
    pub fn apply_flag(&mut self, flag: &str) -> Result<(), SettingsError> {
        let Some((key, value)) = flag.split_once(':') else {
            return Err(SettingsError {
                origin: "--config".into(),
                key: flag.to_string(),
                value: String::new(),
                reason: "expected key:value, e.g. timer.boot.retry:600".into(),
            });
        };
        self.set("--config", key.trim(), &Value::String(value.trim().to_string()))
    }

    /// Defaults, then `input` (a file or zedagent's ConfigItemValueMap; nothing published yet
    /// means the defaults), then the flags.
    pub fn load_input(input: &crate::agent::Input, flags: &[String]) -> Result<Settings, SettingsError> {
        let mut s = Settings::default();
        let origin = input.origin().display().to_string();
        match input.read() {
            Ok(Some(bytes)) => s.apply_json(&origin, &String::from_utf8_lossy(&bytes))?,
            Ok(None) if matches!(input, crate::agent::Input::File(_)) => {
                return Err(SettingsError {
                    origin,
                    key: String::new(),
                    value: String::new(),
                    reason: "cannot read: it does not exist".into(),
                });
            }
            Ok(None) => {}
            Err(reason) => return Err(SettingsError { origin, key: String::new(), value: String::new(), reason }),
        }
        for flag in flags {
            s.apply_flag(flag)?;
        }
        Ok(s)
    }

    /// Defaults, then the file (if any), then the flags.
    pub fn load(file: Option<&Path>, flags: &[String]) -> Result<Settings, SettingsError> {
        let mut s = Settings::default();
        if let Some(file) = file {
            s.apply_file(file)?;
        }
        for flag in flags {
            s.apply_flag(flag)?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_eve() {
        let s = Settings::default();
        assert_eq!(s.boot_retry, Duration::from_secs(600));
        assert_eq!(s.metric_interval, Duration::from_secs(60));
        assert!(s.enable_usb, "EVE: AddBoolItem(UsbAccess, true)");
        assert!(s.enable_vga, "EVE: AddBoolItem(VgaAccess, true)");
    }

    #[test]
    fn reads_eves_config_item_value_map() {
        let mut s = Settings::default();
        s.apply_json(
            "global.json",
            r#"{"GlobalSettings": {
                "timer.boot.retry": {"Key": "timer.boot.retry", "ItemType": 1, "IntValue": 30, "StrValue": "", "BoolValue": false, "TriStateValue": 0},
                "debug.enable.usb": {"Key": "debug.enable.usb", "ItemType": 2, "IntValue": 0, "BoolValue": false},
                "process.cloud-init.multipart": {"Key": "process.cloud-init.multipart", "ItemType": 2, "BoolValue": true},
                "debug.enable.vga": {"Key": "debug.enable.vga", "ItemType": 2, "IntValue": 0, "BoolValue": false},
                "timer.config.interval": {"IntValue": 60}
              }, "AgentSettings": {}}"#,
        )
        .unwrap();
        assert_eq!(s.boot_retry, Duration::from_secs(30));
        assert!(!s.enable_usb && !s.enable_vga);
        assert!(s.process_cloud_init_multipart, "EVE: AddBoolItem(ProcessCloudInitMultiPart, false)");
        assert!(!Settings::default().process_cloud_init_multipart);
    }

    #[test]
    fn reads_a_flat_file_and_flags_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.json");
        std::fs::write(&file, r#"{"timer.boot.retry": 5, "timer.domain.shutdown": "7"}"#).unwrap();
        let s = Settings::load(Some(&file), &["timer.boot.retry:9".into()]).unwrap();
        assert_eq!((s.boot_retry, s.shutdown_timeout), (Duration::from_secs(9), Duration::from_secs(7)));
    }

    #[test]
    fn errors_name_origin_key_and_value() {
        let mut s = Settings::default();
        let e = s.apply_json("f.json", r#"{"timer.boot.rety": 5}"#).unwrap_err();
        assert!(e.to_string().starts_with("f.json: timer.boot.rety = 5: unknown key"), "{e}");
        let e = s.apply_flag("timer.boot.retry:soon").unwrap_err();
        assert_eq!(e.to_string(), "--config: timer.boot.retry = \"soon\": expected a whole number of seconds");
        let e = s.apply_flag("timer.boot.retry:0").unwrap_err();
        assert!(e.to_string().contains("between 1 second"));
        assert!(s.apply_flag("debug.enable.usb").unwrap_err().to_string().contains("key:value"));
        assert!(s.apply_json("f.json", "[1]").unwrap_err().to_string().contains("JSON object"));
        assert!(s.apply_json("f.json", "{").unwrap_err().to_string().starts_with("f.json: "));
    }
}
