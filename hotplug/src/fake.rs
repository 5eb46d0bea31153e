//! Fakes of xenstore, the interfaces and the block layer, for the unit tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{Blocks, Kind, Link, Links, LoopDev, Store};

#[derive(Debug, Default)]
pub(crate) struct FakeStore(pub Mutex<BTreeMap<String, String>>);

impl FakeStore {
    pub fn set(&self, path: &str, value: &str) {
        self.0.lock().unwrap().insert(path.into(), value.into());
    }
}

impl Store for FakeStore {
    fn get(&self, path: &str) -> Option<String> {
        self.0.lock().unwrap().get(path).cloned()
    }
    fn list(&self, path: &str) -> Vec<String> {
        let prefix = format!("{path}/");
        let mut out: Vec<String> = self
            .0
            .lock()
            .unwrap()
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix).map(|rest| rest.split('/').next().unwrap_or_default().to_string()))
            .collect();
        out.dedup();
        out
    }
    fn put(&self, path: &str, value: &str) -> Result<(), String> {
        self.set(path, value);
        Ok(())
    }
}

#[derive(Debug, Default)]
pub(crate) struct FakeLinks {
    pub links: Mutex<Vec<Link>>,
    pub macs: Mutex<BTreeMap<u32, [u8; 6]>>,
    pub fail_master: bool,
}

impl FakeLinks {
    pub fn add(&self, index: u32, name: &str, mtu: u32) {
        let kind = name.starts_with("xenbr").then(|| "bridge".to_string());
        self.links.lock().unwrap().push(Link { index, name: name.into(), mtu, master: None, up: false, kind });
    }
    pub fn by_name(&self, name: &str) -> Option<Link> {
        self.links.lock().unwrap().iter().find(|l| l.name == name).cloned()
    }
    fn edit(&self, index: u32, f: impl FnOnce(&mut Link)) -> Result<(), String> {
        let mut links = self.links.lock().unwrap();
        let l = links.iter_mut().find(|l| l.index == index).ok_or("No such device")?;
        f(l);
        Ok(())
    }
}

impl Links for FakeLinks {
    fn get(&self, name: &str) -> Result<Option<Link>, String> {
        Ok(self.by_name(name))
    }
    fn rename(&self, index: u32, name: &str) -> Result<(), String> {
        self.edit(index, |l| {
            assert!(!l.up, "renamed while up");
            l.name = name.into();
        })
    }
    fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), String> {
        self.edit(index, |l| l.mtu = mtu)
    }
    fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), String> {
        self.macs.lock().unwrap().insert(index, mac);
        Ok(())
    }
    fn set_master(&self, index: u32, master: u32) -> Result<(), String> {
        if self.fail_master {
            return Err("Operation not permitted".into());
        }
        self.edit(index, |l| l.master = Some(master))
    }
    fn set_up(&self, index: u32, up: bool) -> Result<(), String> {
        self.edit(index, |l| l.up = up)
    }
}

/// An attached fake loop device: its backing file's identity, and whether it is read-only.
pub(crate) type Attached = ((u64, u64), bool);

#[derive(Debug, Default)]
pub(crate) struct FakeBlocks {
    pub kinds: Mutex<BTreeMap<PathBuf, Kind>>,
    /// Attached loops: minor → (backing identity, read-only).
    pub loops: Mutex<BTreeMap<u32, Attached>>,
    pub mounted: Mutex<Vec<(u32, u32)>>,
    pub detached: Mutex<Vec<PathBuf>>,
    /// vbds (domid, devid) blkback never opens.
    pub never_opened: Mutex<Vec<(u32, u32)>>,
}

impl FakeBlocks {
    pub fn file(&self, path: &str, ino: u64) {
        self.kinds.lock().unwrap().insert(path.into(), Kind::File { dev: 0x801, ino });
    }
    pub fn block(&self, path: &str, major: u32, minor: u32) {
        self.kinds.lock().unwrap().insert(path.into(), Kind::Block { major, minor });
    }
}

impl Blocks for FakeBlocks {
    fn kind(&self, path: &Path) -> Result<Kind, String> {
        self.kinds.lock().unwrap().get(path).copied().ok_or_else(|| format!("{}: No such file", path.display()))
    }
    fn attach(&self, file: &Path, read_only: bool) -> Result<LoopDev, String> {
        let Kind::File { dev, ino } = self.kind(file)? else { return Err("not a file".into()) };
        let mut loops = self.loops.lock().unwrap();
        let minor = (0..).find(|m| !loops.contains_key(m)).unwrap_or(0);
        loops.insert(minor, ((dev, ino), read_only));
        Ok(LoopDev { path: format!("/dev/loop{minor}").into(), major: 7, minor, open: None })
    }
    fn detach(&self, dev: &Path) -> Result<(), String> {
        let minor: u32 =
            dev.to_str().and_then(|d| d.strip_prefix("/dev/loop")).and_then(|m| m.parse().ok()).ok_or("?")?;
        self.loops.lock().unwrap().remove(&minor);
        self.detached.lock().unwrap().push(dev.into());
        Ok(())
    }
    fn backing(&self, dev: &Path) -> Option<(u64, u64)> {
        let (major, minor) = self.devnum(dev)?;
        self.backing_of(major, minor)
    }
    fn devnum(&self, dev: &Path) -> Option<(u32, u32)> {
        Some((7, dev.to_str()?.strip_prefix("/dev/loop")?.parse().ok()?))
    }
    fn backing_of(&self, major: u32, minor: u32) -> Option<(u64, u64)> {
        (major == 7).then(|| self.loops.lock().unwrap().get(&minor).map(|l| l.0)).flatten()
    }
    fn backend_opened(&self, domid: u32, devid: u32) -> bool {
        !self.never_opened.lock().unwrap().contains(&(domid, devid))
    }
    fn mounted(&self, major: u32, minor: u32) -> bool {
        self.mounted.lock().unwrap().contains(&(major, minor))
    }
}
