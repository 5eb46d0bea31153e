//! What the daemon remembers of each domain it runs, for the daemon that comes after it: one
//! record per domain in `<run-dir>/domains/<uuid>` (tmpfs, like xenstore: both forget
//! everything at a host reboot, together with the domains).
//!
//! A record says where the domain stands in its life as this daemon drove it ([`Step`]), and
//! where its config comes from ([`Origin`]), so that a restarted daemon never mistakes a domain
//! it runs for one whose config was removed:
//! - `creating` is written *before* asking libxl to create the domain, `running` once it runs
//!   (unpaused): a domain found paused under `creating` was left half-created by a daemon that
//!   died mid-create, and is destroyed and created again;
//! - `saving` is written before a save starts: a domain found suspended under it was being
//!   saved when the daemon died, and is resumed (its partial image removed), unless the image
//!   had been put in place already, in which case the save is finished;
//! - the origin tells the start-up what a domain without a config is: an EVE domain whose
//!   config was removed (halted after the removal grace, unless it comes back), an autostart
//!   domain whose file went away (forgotten, left running) or cannot be read (adopted, with the
//!   error in its status), or a transient domain (`domainctl create` or `restore`), whose config
//!   is kept here since it has no file to come back from.
//!
//! A domain without a record was not created by this daemon and is never touched. Records of
//! older daemons (`creating`, `running <domid>` as text) are read with an unknown origin: their
//! domains are adopted when a config names them, and otherwise left alone.
//!
//! Records are JSON, written atomically with mode 0600 (a transient domain's config may carry a
//! VNC password). A record that cannot be read counts as none.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use xenctl::{DomId, DomainSpec};

use crate::files::{self, Paths};

/// Where a domain stands, as the daemon that drives it last recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// A create (or restore) was started and has not finished with the unpause.
    Creating,
    /// It was created and unpaused (or adopted running) as this domain id.
    Running {
        /// The domain id.
        domid: u32,
    },
    /// A save of it to `image` was started and has not finished.
    Saving {
        /// The domain id.
        domid: u32,
        /// Where the image goes once complete (it is written to `<image>.partial` first).
        image: PathBuf,
    },
    /// A migration of it to another host was started and has not finished.
    Migrating {
        /// The domain id.
        domid: u32,
        /// The target, as given.
        to: String,
    },
}

/// Where a recorded domain's config comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Origin {
    /// An EVE DomainConfig file.
    Eve,
    /// An xl.cfg file of the autostart directory.
    Auto {
        /// The file.
        file: PathBuf,
    },
    /// `domainctl create` or `restore`: the config is in the record.
    Transient,
    /// An older daemon's record, which did not say.
    Unknown,
}

/// A domain's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainRecord {
    /// Where it stands.
    #[serde(flatten)]
    pub step: Step,
    /// Where its config comes from.
    pub origin: Origin,
    /// A transient domain's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<DomainSpec>,
}

impl DomainRecord {
    /// The domain id the step names, if any.
    pub fn domid(&self) -> Option<DomId> {
        match self.step {
            Step::Creating => None,
            Step::Running { domid } | Step::Saving { domid, .. } | Step::Migrating { domid, .. } => {
                Some(DomId::new(domid))
            }
        }
    }
}

fn dir(paths: &Paths) -> PathBuf {
    paths.run_dir.join("domains")
}

fn file(paths: &Paths, uuid: Uuid) -> PathBuf {
    dir(paths).join(uuid.to_string())
}

/// Creates the records' directory.
pub fn create_dir(paths: &Paths) -> io::Result<()> {
    std::fs::create_dir_all(dir(paths))
}

/// The record of the domain of `uuid`, if there is one that can be read.
pub fn read(paths: &Paths, uuid: Uuid) -> Option<DomainRecord> {
    let path = file(paths, uuid);
    let bytes = std::fs::read(&path).ok()?;
    parse(&bytes).or_else(|| {
        log::warn!("{}: not a domain record; ignored", path.display());
        None
    })
}

fn parse(bytes: &[u8]) -> Option<DomainRecord> {
    if let Ok(record) = serde_json::from_slice(bytes) {
        return Some(record);
    }
    // An older daemon's text record.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut words = text.split_whitespace();
    let step = match (words.next(), words.next().map(str::parse::<u32>)) {
        (Some("creating"), None) => Step::Creating,
        (Some("running"), Some(Ok(domid))) => Step::Running { domid },
        _ => return None,
    };
    Some(DomainRecord { step, origin: Origin::Unknown, spec: None })
}

/// Writes the record of the domain of `uuid`.
pub fn write(paths: &Paths, uuid: Uuid, record: &DomainRecord) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    files::write_private(&file(paths, uuid), &bytes)
}

/// Forgets the domain of `uuid` (it is gone, or no longer ours).
pub fn clear(paths: &Paths, uuid: Uuid) -> io::Result<()> {
    files::remove_if_exists(&file(paths, uuid))
}

/// The domain of `record` is gone: forgets it, and whatever its save left half-written.
pub fn forget_gone(paths: &Paths, uuid: Uuid, record: &DomainRecord) -> io::Result<()> {
    if let Step::Saving { image, .. } = &record.step {
        crate::images::discard_partial(image);
    }
    clear(paths, uuid)
}

/// Every UUID with a record (files named otherwise are not records).
pub fn recorded(paths: &Paths) -> Vec<Uuid> {
    let Ok(entries) = std::fs::read_dir(dir(paths)) else { return Vec::new() };
    let mut uuids: Vec<Uuid> =
        entries.filter_map(|e| crate::watcher::canonical_uuid(Path::new(&e.ok()?.file_name()).to_str()?)).collect();
    uuids.sort();
    uuids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_older_text_records_read_with_an_unknown_origin() {
        let dir = tempfile::tempdir().unwrap();
        let p = Paths::under(dir.path());
        create_dir(&p).unwrap();
        let u = Uuid::new_v4();
        assert_eq!(read(&p, u), None);
        let spec = DomainSpec::pv("scratch").kernel("/k");
        for record in [
            DomainRecord { step: Step::Creating, origin: Origin::Eve, spec: None },
            DomainRecord {
                step: Step::Running { domid: 7 },
                origin: Origin::Auto { file: "/etc/xen/auto/a".into() },
                spec: None,
            },
            DomainRecord {
                step: Step::Saving { domid: 7, image: "/var/lib/xen/save/scratch".into() },
                origin: Origin::Transient,
                spec: Some(spec.clone()),
            },
        ] {
            write(&p, u, &record).unwrap();
            assert_eq!(read(&p, u), Some(record));
        }
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(file(&p, u)).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(recorded(&p), vec![u]);

        std::fs::write(file(&p, u), "running 12\n").unwrap();
        assert_eq!(
            read(&p, u),
            Some(DomainRecord { step: Step::Running { domid: 12 }, origin: Origin::Unknown, spec: None })
        );
        std::fs::write(file(&p, u), "creating\n").unwrap();
        assert_eq!(read(&p, u).map(|r| r.step), Some(Step::Creating));
        std::fs::write(file(&p, u), "running lots\n").unwrap();
        assert_eq!(read(&p, u), None, "garbage is no record");
        std::fs::write(dir.path().join("run/domains/not-a-uuid"), "creating\n").unwrap();
        std::fs::write(dir.path().join(format!("run/domains/{}", u.simple())), "creating\n").unwrap();
        assert_eq!(recorded(&p), vec![u], "only canonical UUID names are records");
        clear(&p, u).unwrap();
        assert_eq!(read(&p, u), None);
    }
}
