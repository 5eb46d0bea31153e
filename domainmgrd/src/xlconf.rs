//! xl.conf (`--xl-conf`, default /etc/xen/xl.conf) for the daemon and `domainctl create
//! --dry-run`: read afresh at every create and restore, as xl reads it at every command, and put
//! into the spec by [`apply`], the one step between a domain's config and libxl.
//!
//! Reading per create rather than once at start needs no watcher and no reload path: an edit
//! counts from the next create, as with xl, and a broken file fails only the creates made while
//! it is broken, each with the error naming file, line and key (xl, too, refuses to create with
//! it). The file is small and local; [`XlConf::read`] never blocks on it nor reads past 1 MiB.

use std::path::Path;

use xenctl::{DomainSpec, XlConf};

use crate::error_chain;

/// Reads xl.conf at `path` (`None`: none, xl's defaults) and applies it to `spec`.
pub fn apply(path: Option<&Path>, spec: &mut DomainSpec) -> Result<(), String> {
    let conf = read(path)?;
    for w in &conf.warnings {
        log::debug!("{w}");
    }
    spec.apply_xl_conf(&conf);
    Ok(())
}

/// Logs what a start should tell about xl.conf: xl's warnings, what is recorded but not
/// applied, and an error (creates will fail until it is fixed).
pub fn log_at_start(path: Option<&Path>) {
    let Some(p) = path else { return };
    match read(path) {
        Ok(conf) => {
            for w in conf.warnings.iter().chain(&conf.not_applied()) {
                log::warn!("{}: {w}", p.display());
            }
        }
        Err(e) => log::error!("{e}; domains cannot be created until it is fixed"),
    }
}

fn read(path: Option<&Path>) -> Result<XlConf, String> {
    match path {
        None => Ok(XlConf::default()),
        Some(p) => XlConf::read(p).map_err(|e| error_chain(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_applied_and_a_broken_one_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("xl.conf");
        std::fs::write(&path, "claim_mode = 0\nvif.default.bridge = \"br7\"\n").unwrap();
        let mut spec = DomainSpec::pv("g").kernel("/k").vif(xenctl::VifSpec::default());
        apply(Some(&path), &mut spec).unwrap();
        assert_eq!((spec.host_defaults.claim_mode, spec.vifs[0].bridge.as_deref()), (Some(false), Some("br7")));
        let mut plain = DomainSpec::pv("g").kernel("/k");
        apply(None, &mut plain).unwrap();
        assert_eq!(plain.host_defaults.claim_mode, Some(true));
        std::fs::write(&path, "max_grant_frames = \"lots\"\n").unwrap();
        let e = apply(Some(&path), &mut plain).unwrap_err();
        assert_eq!(e, format!("{}:1: max_grant_frames: \"lots\" is not a number", path.display()));
    }
}
