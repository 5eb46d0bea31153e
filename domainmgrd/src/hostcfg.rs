//! Host boot and shutdown settings, with the meanings of xendomains' `/etc/sysconfig/xendomains`
//! (or Debian's `/etc/default/xendomains`), so an existing file works as it is.
//!
//! The file is shell-style `KEY=value` lines (`#` comments, optional quotes); keys may carry the
//! `XENDOMAINS_` prefix or not. An unknown key, or a value that cannot be used, is an error
//! naming the file, the line and the key. xendomains keys that have no meaning here (the sleep
//! tunables, `SHUTDOWN`'s xl arguments) are accepted and ignored. `MIGRATE=<host>` migrates
//! the domains there at host stop, live, as xendomains' `xl migrate <domain> <host>`; those that
//! do not go are saved or shut down.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Host boot and shutdown settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// `SAVE`: save domains here at host stop (and restore them at host start); `None`: shut
    /// them down instead.
    pub save_dir: Option<PathBuf>,
    /// `RESTORE`: restore saved domains at host start.
    pub restore: bool,
    /// `AUTO`: the autostart directory of xl.cfg files.
    pub auto_dir: PathBuf,
    /// `AUTO_ONLY`: at host stop, stop only the autostart domains (else every managed one).
    pub auto_only: bool,
    /// `SYSRQ`: SysRq keys sent to each domain before it is saved or shut down (e.g. `s` to
    /// sync its disks).
    pub sysrq: Vec<char>,
    /// `STOP_MAXWAIT`: the watchdog: how long each domain gets to save or shut down.
    pub stop_maxwait: Duration,
    /// `SHUTDOWN_ALL`: at host stop, also shut down domains domainmgrd does not manage.
    pub shutdown_all: bool,
    /// `DESTROY_LEFT` (ours): destroy what is still running when the watchdog fires.
    pub destroy_left: bool,
    /// `START_PARALLEL` (ours): how many domains host-start creates at once.
    pub start_parallel: usize,
    /// `MIGRATE`: at host stop, migrate the domains to this host first (ssh, as
    /// `domainctl migrate`).
    pub migrate: Option<String>,
    /// `MIGRATE_SSH` (ours): the ssh command for MIGRATE (xl's `-s`).
    pub migrate_ssh: Option<String>,
    /// `MIGRATE_PARALLEL` (ours): how many domains host-stop migrates at once.
    pub migrate_parallel: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            save_dir: None,
            restore: true,
            auto_dir: PathBuf::from("/etc/xen/auto"),
            auto_only: false,
            sysrq: Vec::new(),
            stop_maxwait: Duration::from_secs(300),
            shutdown_all: false,
            destroy_left: true,
            start_parallel: 4,
            migrate: None,
            migrate_ssh: None,
            migrate_parallel: 2,
        }
    }
}

/// A line of the file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {key}: {reason}")]
pub struct HostConfigError {
    /// The file.
    pub file: String,
    /// The line number (1-based).
    pub line: usize,
    /// The key as written.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// xendomains keys accepted and ignored (their work is done differently here).
const IGNORED: [&str; 4] = ["USLEEP", "CREATE_USLEEP", "SHUTDOWN", "SAVE_ARGS"];

fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

fn boolean(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" | "" => Some(false),
        _ => None,
    }
}

impl HostConfig {
    /// Reads `path`; a missing file means the defaults.
    pub fn load(path: &Path) -> Result<HostConfig, HostConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => HostConfig::parse(&path.display().to_string(), &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HostConfig::default()),
            Err(e) => Err(HostConfigError {
                file: path.display().to_string(),
                line: 0,
                key: String::new(),
                reason: e.to_string(),
            }),
        }
    }

    /// Parses the text of a settings file called `file`.
    pub fn parse(file: &str, text: &str) -> Result<HostConfig, HostConfigError> {
        let mut c = HostConfig::default();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let err = |key: &str, reason: &str| HostConfigError {
                file: file.to_string(),
                line: n + 1,
                key: key.to_string(),
                reason: reason.to_string(),
            };
            let Some((key, value)) = line.split_once('=') else {
                return Err(err(line, "expected KEY=value"));
            };
            let key = key.trim();
            // A trailing comment after an unquoted value.
            let value = if value.trim_start().starts_with(['"', '\'']) {
                value
            } else {
                value.split(" #").next().unwrap_or("")
            };
            let value = unquote(value);
            let name = key.strip_prefix("XENDOMAINS_").unwrap_or(key);
            let flag = |v: &str| boolean(v).ok_or_else(|| err(key, &format!("{v:?} is not true or false")));
            let positive = |v: &str| {
                v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| err(key, &format!("{v:?} is not a positive number")))
            };
            match name {
                "SAVE" => c.save_dir = (!value.is_empty()).then(|| PathBuf::from(value)),
                "RESTORE" => c.restore = flag(value)?,
                "AUTO" => {
                    if value.is_empty() {
                        return Err(err(key, "the autostart directory cannot be empty"));
                    }
                    c.auto_dir = PathBuf::from(value);
                }
                "AUTO_ONLY" => c.auto_only = flag(value)?,
                "SYSRQ" => {
                    c.sysrq = value.chars().filter(|ch| !ch.is_whitespace()).collect();
                    if let Some(bad) = c.sysrq.iter().find(|ch| !ch.is_ascii_graphic()) {
                        return Err(err(key, &format!("{bad:?} is not a SysRq key")));
                    }
                }
                "STOP_MAXWAIT" => {
                    let secs: u64 =
                        value.parse().map_err(|_| err(key, &format!("{value:?} is not a number of seconds")))?;
                    if secs == 0 || secs > crate::settings::MAX_SECONDS {
                        return Err(err(key, "must be between 1 second and a year"));
                    }
                    c.stop_maxwait = Duration::from_secs(secs);
                }
                "SHUTDOWN_ALL" => {
                    // xendomains sets it to "--all --wait" to mean yes.
                    c.shutdown_all = value.contains("--all") || flag(value)?;
                }
                "DESTROY_LEFT" => c.destroy_left = flag(value)?,
                "START_PARALLEL" => c.start_parallel = positive(value)?,
                "MIGRATE" if value.is_empty() => c.migrate = None,
                "MIGRATE" => {
                    // The host is checked as `domainctl migrate` checks it: a name or address.
                    crate::migration::command_line(None, value, &[]).map_err(|e| err(key, &e))?;
                    c.migrate = Some(value.to_string());
                }
                "MIGRATE_SSH" => c.migrate_ssh = (!value.is_empty()).then(|| value.to_string()),
                "MIGRATE_PARALLEL" => c.migrate_parallel = positive(value)?,
                ignored if IGNORED.contains(&ignored) => {
                    log::debug!("{file}:{}: {key} has no meaning for domainmgrd; ignored", n + 1);
                }
                _ => {
                    return Err(err(
                        key,
                        "unknown key; known: SAVE, RESTORE, AUTO, AUTO_ONLY, SYSRQ, STOP_MAXWAIT, SHUTDOWN_ALL, DESTROY_LEFT, START_PARALLEL, MIGRATE, MIGRATE_SSH, MIGRATE_PARALLEL (with or without XENDOMAINS_)",
                    ));
                }
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_stock_xendomains_file() {
        let text = r#"
# /etc/default/xendomains, as Debian ships it
XENDOMAINS_MIGRATE=""
XENDOMAINS_SAVE=/var/lib/xen/save
XENDOMAINS_SHUTDOWN="--wait"
XENDOMAINS_SHUTDOWN_ALL="--all --wait"
XENDOMAINS_RESTORE=true
XENDOMAINS_AUTO=/etc/xen/auto
XENDOMAINS_AUTO_ONLY=false
XENDOMAINS_STOP_MAXWAIT=300
XENDOMAINS_SYSRQ=""
XENDOMAINS_USLEEP=100000
"#;
        let c = HostConfig::parse("xendomains", text).unwrap();
        assert_eq!(c.save_dir.as_deref(), Some(Path::new("/var/lib/xen/save")));
        assert!(c.restore && c.shutdown_all && !c.auto_only);
        assert_eq!((c.stop_maxwait, c.sysrq.len()), (Duration::from_secs(300), 0));
    }

    #[test]
    fn short_names_quotes_and_our_keys() {
        let c = HostConfig::parse(
            "f",
            "SAVE=''\nAUTO_ONLY=yes\nSYSRQ='s u'\nSTOP_MAXWAIT=20 # seconds\nDESTROY_LEFT=false\nSTART_PARALLEL=8\nexport RESTORE=no\n",
        )
        .unwrap();
        assert_eq!(c.save_dir, None);
        assert!(c.auto_only && !c.restore && !c.destroy_left);
        assert_eq!((c.sysrq, c.stop_maxwait, c.start_parallel), (vec!['s', 'u'], Duration::from_secs(20), 8));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e =
            HostConfig::parse("/etc/default/domainmgr", "SAVE=/x\nXENDOMAINS_MIGRATE='host2; reboot'\n").unwrap_err();
        assert!(
            e.to_string().starts_with("/etc/default/domainmgr:2: XENDOMAINS_MIGRATE: host \"host2; reboot\""),
            "{e}"
        );
        let c =
            HostConfig::parse("f", "XENDOMAINS_MIGRATE=fe80::2%xenbr0\nMIGRATE_PARALLEL=3\nMIGRATE_SSH='ssh -p 2222'")
                .unwrap();
        assert_eq!(c.migrate.as_deref(), Some("fe80::2%xenbr0"));
        assert_eq!((c.migrate_parallel, c.migrate_ssh.as_deref()), (3, Some("ssh -p 2222")));
        assert!(HostConfig::parse("f", "MIGRATE_PARALLEL=0").is_err());
        let e = HostConfig::parse("f", "STOP_MAXWAIT=soon").unwrap_err();
        assert_eq!(e.to_string(), "f:1: STOP_MAXWAIT: \"soon\" is not a number of seconds");
        let e = HostConfig::parse("f", "STOP_MAXWAIT=18446744073709551615").unwrap_err();
        assert_eq!(e.to_string(), "f:1: STOP_MAXWAIT: must be between 1 second and a year");
        let e = HostConfig::parse("f", "\nAUTO_ONLY=maybe").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(HostConfig::parse("f", "SAVEDIR=/x").unwrap_err().to_string().contains("unknown key"));
        assert!(HostConfig::parse("f", "just words").unwrap_err().to_string().contains("expected KEY=value"));
        assert_eq!(HostConfig::load(Path::new("/nonexistent/domainmgr")).unwrap(), HostConfig::default());
    }

    #[test]
    fn the_host_units_stop_timeout_leaves_room_for_the_default_watchdog() {
        let unit = include_str!("../../packaging/systemd/domainmgr-host.service");
        let secs: u64 = unit
            .lines()
            .find_map(|l| l.strip_prefix("TimeoutStopSec="))
            .and_then(|v| v.trim().parse().ok())
            .expect("TimeoutStopSec in seconds");
        assert!(secs >= HostConfig::default().stop_maxwait.as_secs() + 120, "TimeoutStopSec={secs}");
    }

    #[test]
    fn the_packaged_default_file_parses_to_the_defaults_commented_or_not() {
        let shipped = include_str!("../../packaging/default/domainmgr");
        assert_eq!(HostConfig::parse("packaging/default/domainmgr", shipped).unwrap(), HostConfig::default());
        // Each commented setting shows its default: uncommented, nothing changes.
        let uncommented: String = shipped
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest)
                    if rest
                        .split('=')
                        .next()
                        .is_some_and(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(uncommented.lines().filter(|l| l.contains('=') && !l.starts_with('#')).count(), 10);
        assert_eq!(HostConfig::parse("uncommented", &uncommented).unwrap(), HostConfig::default());
    }
}
