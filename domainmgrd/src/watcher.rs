//! Watches the config directory (and the settings file) with inotify and tells the supervisor
//! which files changed or went away.
//!
//! Only completed files count: a file is reported when a writer closes it (`IN_CLOSE_WRITE`)
//! or renames it into place (`IN_MOVED_TO`), never while it is being written, and only names of
//! the form `<uuid>.json` (editors' swap and backup files, hidden and temporary files are
//! ignored). Removals are reported as such; the supervisor waits a moment before believing them,
//! because editors replace a file by moving it away and writing a new one.
//!
//! The config directory itself may go away (zedmanager's `/run/zedmanager` being cleaned up):
//! that is reported as a rescan (every config is gone), and its parent is watched so that the
//! watch is set again, with another rescan, as soon as the directory comes back.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::Sender;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

/// What the watcher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `<key>.json` was written or moved into place.
    Config(String),
    /// `<key>.json` was removed or moved away.
    ConfigGone(String),
    /// The settings file changed.
    Settings,
    /// An adapter input (PhysicalIOAdapterList or DeviceNetworkStatus) changed.
    Adapters,
    /// A file in the autostart directory was written or moved into place.
    AutoFile(PathBuf),
    /// A file left the autostart directory.
    AutoGone(PathBuf),
    /// Events were lost: rescan everything.
    Rescan,
    /// zedmanager's DomainConfig publication sent its whole snapshot (pubsub inputs).
    ConfigsSynchronized,
    /// zedmanager's DomainConfig publication says it restarted (its counter).
    ConfigsRestarted(u64),
}

/// The UUID a name spells in its one canonical form (lower-case hex, hyphenated), or `None`.
/// Other spellings of a UUID (upper case, braces, `urn:uuid:`, 32 bare digits) are not
/// accepted: two names for one domain would make two threads for it.
pub fn canonical_uuid(name: &str) -> Option<uuid::Uuid> {
    let uuid = name.parse::<uuid::Uuid>().ok()?;
    (uuid.hyphenated().to_string() == name).then_some(uuid)
}

/// The key of a config file name (`<uuid>.json` → `<uuid>`, the UUID written canonically), or
/// `None` for any other file.
pub fn config_key(name: &OsStr) -> Option<String> {
    let key = name.to_str()?.strip_suffix(".json")?;
    canonical_uuid(key).map(|_| key.to_string())
}

/// Whether a name in the config directory looks like a config that [`config_key`] refuses for
/// its spelling (`<some UUID>.json` written otherwise), to be reported once.
pub fn misspelt_config(name: &OsStr) -> bool {
    name.to_str()
        .and_then(|n| n.strip_suffix(".json"))
        .is_some_and(|key| key.parse::<uuid::Uuid>().is_ok() && canonical_uuid(key).is_none())
}

/// Whether a file name in the autostart directory is a config (not an editor's or package
/// manager's leftover, nor hidden).
pub fn is_auto_config(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else { return false };
    !(name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".tmp")
        || name.contains(".dpkg-")
        || name.ends_with(".rpmnew")
        || name.ends_with(".rpmsave")
        || name == "4913")
}

/// The running watcher.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    wake_dir: PathBuf,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching `config_dir` (if any: with EVE's pubsub, configs do not come as files)
    /// and the files in `others` (each reported as its `Change` when written or moved into
    /// place), reporting to `tx`. `wake_dir` is a private directory used to wake the thread
    /// when stopping. Directories of `others` are created if missing.
    pub fn start(
        config_dir: Option<&Path>,
        auto_dir: Option<&Path>,
        others: &[(PathBuf, Change)],
        wake_dir: &Path,
        tx: Sender<Change>,
    ) -> std::io::Result<Watcher> {
        std::fs::create_dir_all(wake_dir)?;
        let inotify = Inotify::init()?;
        let config_wd = config_dir.map(|dir| inotify.watches().add(dir, CONFIG_MASK)).transpose()?;
        let mut files: Vec<(WatchDescriptor, std::ffi::OsString, Change)> = Vec::new();
        for (file, change) in others {
            let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let wd = inotify.watches().add(dir, WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO)?;
            files.push((wd, file.file_name().map(|n| n.to_os_string()).unwrap_or_default(), change.clone()));
        }
        let auto = match auto_dir {
            Some(dir) if dir.is_dir() => Some((
                inotify.watches().add(
                    dir,
                    WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO | WatchMask::MOVED_FROM | WatchMask::DELETE,
                )?,
                dir.to_path_buf(),
            )),
            _ => None,
        };
        let wake_wd = inotify.watches().add(wake_dir, WatchMask::CREATE)?;
        // Last, and added to what else is watched there: a directory has one watch.
        let config_dir = match config_dir {
            Some(dir) => {
                let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                Some(ConfigDir {
                    wd: config_wd,
                    path: dir.to_path_buf(),
                    parent: inotify
                        .watches()
                        .add(parent, WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::MASK_ADD)?,
                    name: dir.file_name().map(|n| n.to_os_string()).unwrap_or_default(),
                })
            }
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("config-watcher".into())
            .spawn(move || run(inotify, config_dir, auto, files, wake_wd, thread_stop, tx))?;
        Ok(Watcher { stop, wake_dir: wake_dir.to_path_buf(), thread: Some(thread) })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let poke = self.wake_dir.join(format!("stop-{}", std::process::id()));
        let _ = std::fs::write(&poke, b"");
        let _ = std::fs::remove_file(&poke);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the config directory's watch reports.
const CONFIG_MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::DELETE)
    .union(WatchMask::DELETE_SELF);

/// The config directory's watch (none while the directory is gone), and its parent's.
struct ConfigDir {
    wd: Option<WatchDescriptor>,
    path: PathBuf,
    parent: WatchDescriptor,
    name: std::ffi::OsString,
}

fn run(
    mut inotify: Inotify,
    mut config_dir: Option<ConfigDir>,
    auto: Option<(WatchDescriptor, PathBuf)>,
    files: Vec<(WatchDescriptor, std::ffi::OsString, Change)>,
    wake_wd: WatchDescriptor,
    stop: Arc<AtomicBool>,
    tx: Sender<Change>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        let events = match inotify.read_events_blocking(&mut buffer) {
            Ok(events) => events,
            Err(e) => {
                log::error!("reading inotify events failed: {e}; falling back to periodic rescans");
                return;
            }
        };
        for event in events {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let change = if event.mask.contains(EventMask::Q_OVERFLOW) {
                Some(Change::Rescan)
            } else if event.wd == wake_wd {
                None
            } else if let Some(config_dir) =
                config_dir.as_mut().filter(|c| event.wd == c.parent && event.name == Some(c.name.as_os_str()))
            {
                // The config directory (re)appeared: watch it again and read what is in it.
                match inotify.watches().add(&config_dir.path, CONFIG_MASK) {
                    Ok(wd) => {
                        log::info!("the config directory {} is back", config_dir.path.display());
                        config_dir.wd = Some(wd);
                    }
                    Err(e) => log::error!("cannot watch {}: {e}; relying on rescans", config_dir.path.display()),
                }
                Some(Change::Rescan)
            } else if let Some(config_dir) = config_dir.as_mut().filter(|c| Some(&event.wd) == c.wd.as_ref()) {
                if event.mask.intersects(EventMask::DELETE_SELF | EventMask::IGNORED) {
                    log::warn!("the config directory went away; watching for it to come back");
                    config_dir.wd = None;
                    Some(Change::Rescan)
                } else {
                    event.name.and_then(config_key).map(|key| {
                        if event.mask.intersects(EventMask::DELETE | EventMask::MOVED_FROM) {
                            Change::ConfigGone(key)
                        } else {
                            Change::Config(key)
                        }
                    })
                }
            } else if event.mask.contains(EventMask::CREATE) {
                // Only the config directory's parent asks for creations; a file is not
                // complete when it is created.
                None
            } else if let Some((_, dir)) = auto.as_ref().filter(|(wd, _)| *wd == event.wd) {
                event.name.filter(|n| is_auto_config(n)).map(|n| {
                    let path = dir.join(n);
                    if event.mask.intersects(EventMask::DELETE | EventMask::MOVED_FROM) {
                        Change::AutoGone(path)
                    } else {
                        Change::AutoFile(path)
                    }
                })
            } else if let Some((_, _, change)) =
                files.iter().find(|(wd, name, _)| *wd == event.wd && event.name == Some(name.as_os_str()))
            {
                Some(change.clone())
            } else {
                None
            };
            if let Some(change) = change
                && tx.send(change).is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const KEY: &str = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";

    #[test]
    fn only_uuid_json_names_are_configs() {
        assert_eq!(config_key(OsStr::new(&format!("{KEY}.json"))), Some(KEY.to_string()));
        for other in [
            format!("{KEY}.json.tmp"),
            format!(".{KEY}.json.swp"),
            format!("{KEY}.json~"),
            "4913".into(),
            "web.json".into(),
            format!(".{KEY}.json"),
            format!("{}.json", KEY.to_uppercase()),
            format!("{{{KEY}}}.json"),
            format!("urn:uuid:{KEY}.json"),
            format!("{}.json", KEY.replace('-', "")),
        ] {
            assert_eq!(config_key(OsStr::new(&other)), None, "{other}");
        }
        for alias in [format!("{}.json", KEY.to_uppercase()), format!("{{{KEY}}}.json"), format!("urn:uuid:{KEY}.json")]
        {
            assert!(misspelt_config(OsStr::new(&alias)), "{alias}");
        }
        assert!(!misspelt_config(OsStr::new("web.json")) && !misspelt_config(OsStr::new(&format!("{KEY}.json"))));
    }

    #[test]
    fn reports_whole_files_renames_and_removals_only() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("DomainConfig");
        std::fs::create_dir_all(&cfg).unwrap();
        let settings = dir.path().join("settings.json");
        let (tx, rx) = crossbeam_channel::unbounded();
        let adapters = dir.path().join("zedagent/PhysicalIOAdapterList/global.json");
        let others = [(settings.clone(), Change::Settings), (adapters.clone(), Change::Adapters)];
        let auto = dir.path().join("auto");
        std::fs::create_dir_all(&auto).unwrap();
        let w = Watcher::start(Some(&cfg), Some(&auto), &others, &dir.path().join("wake"), tx).unwrap();
        let next = || rx.recv_timeout(Duration::from_secs(5)).unwrap();

        // A writer that writes in pieces is reported once, when it closes the file.
        {
            use std::io::Write;
            let mut f = std::fs::File::create(cfg.join(format!("{KEY}.json"))).unwrap();
            f.write_all(b"{\"Disp").unwrap();
            f.flush().unwrap();
            f.write_all(b"layName\": \"x\"}").unwrap();
        }
        assert_eq!(next(), Change::Config(KEY.into()));
        // An atomic replace: temp file written (ignored), renamed into place (reported).
        std::fs::write(cfg.join(".tmp-123"), b"{}").unwrap();
        std::fs::rename(cfg.join(".tmp-123"), cfg.join(format!("{KEY}.json"))).unwrap();
        assert_eq!(next(), Change::Config(KEY.into()));
        std::fs::write(&settings, b"{}").unwrap();
        assert_eq!(next(), Change::Settings);
        std::fs::write(&adapters, b"{}").unwrap();
        assert_eq!(next(), Change::Adapters);
        std::fs::write(auto.join("web.cfg~"), b"").unwrap();
        std::fs::write(auto.join("web.cfg"), b"name='web'").unwrap();
        assert_eq!(next(), Change::AutoFile(auto.join("web.cfg")));
        std::fs::remove_file(auto.join("web.cfg")).unwrap();
        assert_eq!(next(), Change::AutoGone(auto.join("web.cfg")));
        std::fs::remove_file(cfg.join(format!("{KEY}.json"))).unwrap();
        assert_eq!(next(), Change::ConfigGone(KEY.into()));
        // Nothing else came in between: the next change is the one made next (inotify keeps
        // the order).
        std::fs::write(&settings, b"{}").unwrap();
        assert_eq!(next(), Change::Settings, "nothing else");
        w.stop();
    }

    #[test]
    fn a_config_directory_that_comes_back_is_watched_again() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("DomainConfig");
        std::fs::create_dir_all(&cfg).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let w = Watcher::start(Some(&cfg), None, &[], &dir.path().join("wake"), tx).unwrap();
        let next = || rx.recv_timeout(Duration::from_secs(5)).unwrap();

        std::fs::remove_dir(&cfg).unwrap();
        assert_eq!(next(), Change::Rescan, "gone: every config is gone");
        std::fs::create_dir(&cfg).unwrap();
        assert_eq!(next(), Change::Rescan, "back: read what it holds");
        std::fs::write(cfg.join(format!("{KEY}.json")), b"{}").unwrap();
        let first_other = std::iter::from_fn(|| Some(next())).find(|c| *c != Change::Rescan);
        assert_eq!(first_other, Some(Change::Config(KEY.into())), "a config written into it is seen");
        w.stop();
    }
}
