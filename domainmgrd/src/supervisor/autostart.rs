//! The autostart directory (xendomains' `AUTO`, default `/etc/xen/auto`): xl.cfg files whose
//! domains host-start boots. Each file becomes a managed domain keyed by its UUID. A file that
//! sets no `uuid` (as libxlutil reads the file, so `name = "a"; uuid = "..."` counts) gets one
//! derived from the domain's name, not the file's path: the name is what identifies a domain
//! on a Xen host (xendomains and xl go by it), and it stays put when the file is renamed or
//! moved, so an operator's stop and a saved image still belong to the domain afterwards.
//! Renaming the domain makes it another one. Two files for one domain (one name, or one UUID)
//! are an error on the second. Such a domain runs when host-start or an operator starts it, or
//! because it already runs; removing its file stops managing it (the domain keeps running).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use uuid::Uuid;
use xenctl::{DomainInfo, DomainSpec, XlConfigFile};

use super::Supervisor;
use crate::configfile::{self, XlParseError};
use crate::domain::{Command, Loaded, Source};
use crate::eve::{DomainConfig, UuidAndVersion};
use crate::translate::Translated;
use crate::{error_chain, watcher};

/// Namespace of the UUIDs derived for autostart files without a `uuid` key.
const AUTO_NAMESPACE: Uuid = Uuid::from_u128(0x6c1d_5a0e_8b8e_4f55_9a55_1c3e_d0a1_7a35);

/// The UUID of an autostart domain whose file sets none.
pub(crate) fn derived_uuid(name: &str) -> Uuid {
    Uuid::new_v5(&AUTO_NAMESPACE, name.as_bytes())
}

/// The config for the domain thread of the autostart file at `path`, parsed.
fn loaded_from_file(path: &Path, file: XlConfigFile) -> Loaded {
    let mut spec = file.spec;
    if !file.uuid_given {
        spec.uuid = derived_uuid(&spec.name);
    }
    loaded_from_spec(spec, Source::Auto(path.to_path_buf()))
}

/// A config for a domain thread made from a spec (autostart or transient domains).
pub(crate) fn loaded_from_spec(spec: DomainSpec, source: Source) -> Loaded {
    let config = DomainConfig {
        uuid_and_version: UuidAndVersion { uuid: spec.uuid, version: String::new() },
        display_name: spec.name.clone(),
        activate: false,
        ..DomainConfig::default()
    };
    Loaded { config, translated: Ok(Translated::of_spec(spec)), source }
}

impl Supervisor {
    pub(super) fn list_auto_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.host.auto_dir) else { return Vec::new() };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| watcher::is_auto_config(&e.file_name()))
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    }

    /// An autostart file was written (or found): hand its config to its domain thread.
    /// `running` holds the running domains by UUID at start-up (empty later).
    pub(super) fn on_auto_file(&mut self, path: &Path, running: &mut HashMap<Uuid, DomainInfo>) {
        let bytes = match configfile::read(path, &configfile::XL_CFG) {
            Ok(b) => b,
            Err(e) => return self.auto_unusable(path, error_chain(&e)),
        };
        // A parse costs a child process: an unchanged file (every rescan) is not parsed again,
        // unless the helper itself failed, which it may not do next time (it was missing
        // during an upgrade, or ran out of time on a loaded host). An unchanged error is
        // logged once.
        let parsed = match self.auto_parsed.get(path) {
            Some((seen, parsed)) if *seen == bytes => parsed.clone(),
            _ => match self.options.xl_parser.try_parse(&path.display().to_string(), &bytes) {
                Err(XlParseError::Helper(e)) => {
                    self.auto_parsed.remove(path);
                    Err(e)
                }
                parsed => {
                    let parsed = parsed.map_err(|e| e.to_string());
                    self.auto_parsed.insert(path.to_path_buf(), (bytes.clone(), parsed.clone()));
                    parsed
                }
            },
        };
        let loaded = match parsed {
            Ok(file) => loaded_from_file(path, file),
            Err(e) => return self.auto_unusable(path, e),
        };
        self.auto_errors.remove(path);
        let uuid = loaded.config.uuid_and_version.uuid;
        let key = uuid.to_string();
        if let Some(old_key) = self.auto_keys.get(path).filter(|k| **k != key).cloned() {
            // Its UUID changed: the old domain is no longer this file's.
            if let Some(h) = self.domains.get(&old_key) {
                let _ = h.tx.send(Command::Forget);
            }
        }
        if let Some(other) = self.auto_keys.iter().find(|(p, k)| **k == key && p.as_path() != path && p.exists()) {
            let e = format!(
                "{}: domain {} (UUID {uuid}) is already configured by {}; ignored",
                path.display(),
                loaded.config.display_name,
                other.0.display()
            );
            log::error!("autostart: {e}");
            self.auto_errors.insert(path.to_path_buf(), e);
            return;
        }
        match self.domains.get(&key) {
            Some(h) if h.source == Source::Eve => {
                let e = format!("{}: UUID {uuid} is already an EVE DomainConfig's; ignored", path.display());
                log::error!("autostart: {e}");
                self.auto_errors.insert(path.to_path_buf(), e);
                return;
            }
            Some(h) if h.last_bytes.as_deref() == Some(&bytes) => return,
            _ => {}
        }
        self.auto_keys.insert(path.to_path_buf(), key.clone());
        let existing = running.remove(&uuid);
        self.send_or_spawn(&key, uuid, Command::Config(Box::new(loaded)), existing);
        if let Some(h) = self.domains.get_mut(&key) {
            h.last_bytes = Some(bytes);
        }
    }

    /// An autostart file that cannot be read or used: its domain, if it has one, keeps running
    /// on its last good config, with the error in its status until the file is fixed. An
    /// unchanged error is logged and told once.
    fn auto_unusable(&mut self, path: &Path, e: String) {
        if self.auto_errors.get(path) != Some(&e) {
            log::error!("autostart: {e}");
            let key = self.auto_keys.get(path).cloned();
            if let Some(h) = key.and_then(|k| self.domains.get_mut(&k)) {
                // Whatever the file says next is news, even the bytes it held before.
                h.last_bytes = None;
                let _ = h.tx.send(Command::ConfigUnreadable(e.clone()));
            }
        }
        self.auto_errors.insert(path.to_path_buf(), e);
    }

    pub(super) fn settle_auto_removals(&mut self) {
        let now = Instant::now();
        let due: Vec<PathBuf> =
            self.pending_auto_removals.iter().filter(|(_, at)| **at <= now).map(|(p, _)| p.clone()).collect();
        for path in due {
            self.pending_auto_removals.remove(&path);
            if path.exists() {
                self.on_auto_file(&path, &mut HashMap::new());
                continue;
            }
            self.auto_errors.remove(&path);
            self.auto_parsed.remove(&path);
            if let Some(key) = self.auto_keys.remove(&path) {
                if self.auto_keys.values().any(|k| *k == key) {
                    // Renamed or moved: another file has the domain now.
                    continue;
                }
                log::info!("autostart: {} is gone; its domain is no longer managed (it keeps running)", path.display());
                if let Some(h) = self.domains.get(&key) {
                    let _ = h.tx.send(Command::Forget);
                }
            }
        }
    }

    pub(super) fn rescan_auto(&mut self) {
        let present = self.list_auto_files();
        for path in &present {
            self.on_auto_file(path, &mut HashMap::new());
        }
        let gone: Vec<PathBuf> = self.auto_keys.keys().filter(|p| !present.contains(p)).cloned().collect();
        for path in gone {
            self.pending_auto_removals.entry(path).or_insert_with(Instant::now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads and parses an autostart file as the supervisor does, the parse in-process (the
    /// child's tests are in tests/xlparse.rs and tests/hostile_files.rs).
    fn load(path: &Path) -> Result<(Loaded, Vec<u8>), String> {
        let bytes = configfile::read(path, &configfile::XL_CFG).map_err(|e| error_chain(&e))?;
        let file = configfile::parse_xl_config(&path.display().to_string(), &bytes)?;
        Ok((loaded_from_file(path, file), bytes))
    }

    #[test]
    fn a_file_without_uuid_gets_a_stable_one_from_its_domain_name() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.cfg");
        std::fs::write(&a, "name = 'a'\nkernel = '/k'\n# uuid = 'not this one'\n").unwrap();
        let (one, _) = load(&a).unwrap();
        let (two, _) = load(&a).unwrap();
        assert_eq!(one.config.uuid_and_version.uuid, two.config.uuid_and_version.uuid);
        assert_eq!(one.config.uuid_and_version.uuid, derived_uuid("a"));
        assert_eq!(one.config.uuid_and_version.uuid.get_version_num(), 5);
        // Renamed or moved, it is the same domain; another name is another domain.
        let moved = dir.path().join("sub");
        std::fs::create_dir(&moved).unwrap();
        std::fs::rename(&a, moved.join("renamed.cfg")).unwrap();
        assert_eq!(load(&moved.join("renamed.cfg")).unwrap().0.config.uuid_and_version.uuid, derived_uuid("a"));
        std::fs::write(&a, "name = 'a2'\nkernel = '/k'\n").unwrap();
        assert_ne!(load(&a).unwrap().0.config.uuid_and_version.uuid, derived_uuid("a"));

        let b = dir.path().join("b.cfg");
        std::fs::write(&b, "name = 'b'\nkernel = '/k'\nuuid = '6ba7b810-9dad-11d1-80b4-00c04fd430c8'\n").unwrap();
        let (three, _) = load(&b).unwrap();
        assert_eq!(three.config.uuid_and_version.uuid.to_string(), "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
        assert_eq!(three.source, Source::Auto(b.clone()));
        assert!(!three.config.activate, "autostart domains start at host start, not when read");

        std::fs::write(&b, "name = 'b'\nkernl = '/k'\n").unwrap();
        let err = load(&b).unwrap_err();
        assert!(err.contains("b.cfg:2: kernl"), "{err}");
    }

    #[test]
    fn a_uuid_beside_other_keys_on_one_line_is_the_files_own() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.cfg");
        std::fs::write(&a, "name = \"a\"; uuid = \"6ba7b810-9dad-11d1-80b4-00c04fd430c8\"\nkernel = \"/k\"\n").unwrap();
        let (loaded, _) = load(&a).unwrap();
        assert_eq!(loaded.config.uuid_and_version.uuid.to_string(), "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    }
}
