//! Reading an xl.cfg file's values for the parser in `xlparse.rs`: libxlutil parses the text
//! and reads each value, `xlscan.rs` knows where each key is, and every problem becomes an
//! [`Error::XlConfig`] naming the file, the line and the key.

use std::ffi::CString;

use crate::cpuset::{self, HostCpus};
use crate::error::{Error, Result};
use crate::xlguard;
use crate::xlscan::KeyLines;
use crate::xlu::{ListItem, NestedItem, Setting, XluConfig};

/// A value xl accepts either as one string or as a list (`serial`, `usbdevice`, `cpus`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OneOrList {
    One(String),
    List(Vec<String>),
}

/// A value xl reads as a list of lists of strings (`vsnd`), or the single value xl ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OneOrLists {
    One(String),
    Lists(Vec<Vec<String>>),
}

/// A parsed xl.cfg file and where its keys are.
pub(crate) struct Reader {
    xlu: XluConfig,
    lines: KeyLines,
    source: String,
    /// The host's CPUs, for CPU lists that depend on them (`cpuset.rs`).
    host: Option<HostCpus>,
}

impl Reader {
    /// Parses `data` with libxlutil; its syntax errors come back with their line. Text that
    /// libxlutil would abort on, or spend quadratic memory on, never reaches it (`xlguard.rs`).
    pub(crate) fn new(source: &str, data: &[u8], host: Option<HostCpus>) -> Result<Reader> {
        xlguard::check(source, data)?;
        let mut xlu = XluConfig::new(source)?;
        match xlu.read_data(data) {
            Ok(()) => {}
            // libxlutil's allocations failed: not a fault of the file's syntax.
            Err(libc::ENOMEM) => return Err(Error::OutOfMemory { op: "parsing an xl.cfg file" }),
            Err(rc) => return Err(syntax_error(source, data, &xlu.take_report(), rc)),
        }
        let report = xlu.take_report();
        if !report.trim().is_empty() {
            log::warn!("{}", report.trim());
        }
        let lines = KeyLines::scan(data);
        Ok(Reader { xlu, lines, source: source.to_string(), host })
    }

    /// Reads `text`, the value of `key` (or of its list item `item`), as an xl CPU list on
    /// this reader's host: its CPUs, empty for `all` where the host is not known.
    pub(crate) fn cpu_list(&self, key: &str, item: Option<usize>, text: &str) -> Result<Vec<u32>> {
        let at = |e: String| match item {
            Some(i) => self.item_err(key, i, e),
            None => self.err(key, e),
        };
        let list = cpuset::parse(text, self.host.as_ref()).map_err(at)?;
        if let Some(note) = cpuset::dropped_note(&list, self.host.as_ref()) {
            let which = item.map(|i| format!("[{i}]")).unwrap_or_default();
            log::warn!("{}: {key}{which}: {note}", self.at(key));
        }
        Ok(list.cpus)
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn lines(&self) -> &KeyLines {
        &self.lines
    }

    /// Whether the file sets `key`.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.lines.line(key).is_some()
    }

    /// `FILE:LINE` of `key`, for log messages.
    pub(crate) fn at(&self, key: &str) -> String {
        match self.lines.line(key) {
            Some(line) => format!("{}:{line}", self.source),
            None => self.source.clone(),
        }
    }

    /// An error about `key`, at its line.
    pub(crate) fn err(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::XlConfig {
            file: self.source.clone(),
            line: self.lines.line(key),
            key: Some(key.to_string()),
            reason: reason.into(),
        }
    }

    /// An error about a key the file lacks.
    pub(crate) fn err_missing(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::XlConfig { file: self.source.clone(), line: None, key: Some(key.to_string()), reason: reason.into() }
    }

    /// "FILE:LINE" of item `index` of list `key`, for a warning.
    pub(crate) fn item_at(&self, key: &str, index: usize) -> String {
        match self.lines.item_line(key, index) {
            Some(line) => format!("{}:{line}", self.source),
            None => self.source.clone(),
        }
    }

    /// An error about item `index` of list `key`, at the item's line.
    pub(crate) fn item_err(&self, key: &str, index: usize, reason: impl Into<String>) -> Error {
        Error::XlConfig {
            file: self.source.clone(),
            line: self.lines.item_line(key, index),
            key: Some(format!("{key}[{index}]")),
            reason: reason.into(),
        }
    }

    fn c_key(&self, key: &str) -> Result<CString> {
        CString::new(key).map_err(|_| self.err(key, "contains a NUL byte"))
    }

    /// A single-valued string.
    pub(crate) fn string(&mut self, key: &str) -> Result<Option<String>> {
        match self.xlu.string(&self.c_key(key)?) {
            Setting::Missing => Ok(None),
            Setting::Found(s) => Ok(Some(s)),
            Setting::Invalid(why) => Err(self.err(key, why)),
        }
    }

    /// A number (as libxlutil reads it) of at least `min` that fits `T`.
    pub(crate) fn number<T: TryFrom<i64>>(&mut self, key: &str, min: i64) -> Result<Option<T>> {
        let n = match self.xlu.long(&self.c_key(key)?) {
            Setting::Missing => return Ok(None),
            Setting::Found(n) => n,
            Setting::Invalid(why) => return Err(self.err(key, why)),
        };
        if n < min {
            return Err(self.err(key, format!("{n}: must be at least {min}")));
        }
        T::try_from(n).map(Some).map_err(|_| self.err(key, format!("{n}: too large")))
    }

    /// A boolean, written as a number (any non-zero is true), as xl's defbool keys are.
    pub(crate) fn flag(&mut self, key: &str) -> Result<Option<bool>> {
        match self.xlu.long(&self.c_key(key)?) {
            Setting::Missing => Ok(None),
            Setting::Found(n) => Ok(Some(n != 0)),
            Setting::Invalid(why) => Err(self.err(key, format!("{why} (expected 0 or 1)"))),
        }
    }

    /// A list of strings; a nested list is an error at its item.
    pub(crate) fn list(&mut self, key: &str) -> Result<Option<Vec<String>>> {
        match self.xlu.list(&self.c_key(key)?) {
            Setting::Missing => Ok(None),
            Setting::Found(items) => self.texts(key, items).map(Some),
            Setting::Invalid(why) => Err(self.err(key, why)),
        }
    }

    /// A list of lists, as libxlutil gives it: per item, its own items (strings, or
    /// [`ListItem::List`] for a list nested deeper), or `None` where the item is a string.
    pub(crate) fn list_of_lists(&mut self, key: &str) -> Result<Option<Vec<Option<Vec<ListItem>>>>> {
        match self.xlu.nested_list(&self.c_key(key)?) {
            Setting::Missing => Ok(None),
            Setting::Found(items) => Ok(Some(
                items
                    .into_iter()
                    .map(|item| match item {
                        NestedItem::Text(_) => None,
                        NestedItem::List(inner) => Some(inner),
                    })
                    .collect(),
            )),
            Setting::Invalid(why) => Err(self.err(key, why)),
        }
    }

    fn texts(&self, key: &str, items: Vec<ListItem>) -> Result<Vec<String>> {
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                ListItem::Text(t) => Ok(t),
                ListItem::List => Err(self.item_err(key, i, "a nested list, where xl expects a string")),
            })
            .collect()
    }

    /// A list key's items, for a key xl reads with `xlu_cfg_get_list` and skips when it is not
    /// a list: a single value is ignored with a warning, as xl ignores it (libxlutil warns).
    pub(crate) fn list_or_ignore(&mut self, key: &str) -> Result<Option<Vec<String>>> {
        match self.string_or_list(key)? {
            None => Ok(None),
            Some(OneOrList::List(items)) => Ok(Some(items)),
            Some(OneOrList::One(_)) => {
                log::warn!(
                    "{}: {key}: a single value where xl expects a list [ ... ]; ignored, as xl ignores it",
                    self.at(key)
                );
                Ok(None)
            }
        }
    }

    /// A single-valued key's text, for a key xl skips when it is a list: a list is ignored
    /// with a warning, as xl ignores it.
    pub(crate) fn string_or_ignore(&mut self, key: &str) -> Result<Option<String>> {
        match self.string_or_list(key)? {
            None => Ok(None),
            Some(OneOrList::One(text)) => Ok(Some(text)),
            Some(OneOrList::List(_)) => {
                log::warn!(
                    "{}: {key}: a list where xl expects a single value; ignored, as xl ignores it",
                    self.at(key)
                );
                Ok(None)
            }
        }
    }

    /// A string or a list of strings, as given.
    pub(crate) fn string_or_list(&mut self, key: &str) -> Result<Option<OneOrList>> {
        let c_key = self.c_key(key)?;
        match self.xlu.list(&c_key) {
            Setting::Missing => Ok(None),
            Setting::Found(items) => self.texts(key, items).map(|l| Some(OneOrList::List(l))),
            Setting::Invalid(_) => self.string(key).map(|s| s.map(OneOrList::One)),
        }
    }

    /// A list of lists of strings (`vsnd = [ [ "a", "b" ], [ "c" ] ]`), or a single value; an
    /// item that is not a list, or a list nested deeper, is an error at the item.
    pub(crate) fn lists(&mut self, key: &str) -> Result<Option<OneOrLists>> {
        let c_key = self.c_key(key)?;
        let items = match self.xlu.nested_list(&c_key) {
            Setting::Missing => return Ok(None),
            Setting::Found(items) => items,
            Setting::Invalid(_) => return self.string(key).map(|s| s.map(OneOrLists::One)),
        };
        let mut lists = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let NestedItem::List(inner) = item else {
                return Err(self.item_err(key, i, "a string, where xl expects a list [ ... ]"));
            };
            let texts = inner.into_iter().map(|t| match t {
                ListItem::Text(t) => Ok(t),
                ListItem::List => Err(self.item_err(key, i, "a list nested in a list nested in the list")),
            });
            lists.push(texts.collect::<Result<Vec<_>>>()?);
        }
        Ok(Some(OneOrLists::Lists(lists)))
    }

    /// A value xl reads as a number if it is one, else as a word (`tsc_mode`): the number in
    /// decimal, or the word.
    pub(crate) fn string_or_number(&mut self, key: &str) -> Result<Option<String>> {
        match self.xlu.long(&self.c_key(key)?) {
            Setting::Found(n) => Ok(Some(n.to_string())),
            _ => self.string(key),
        }
    }

    /// A boolean that xl also accepts as a list of strings (`viridian`): `Err(list)` for
    /// the list form.
    pub(crate) fn list_or_flag(&mut self, key: &str) -> Result<std::result::Result<Option<bool>, Vec<String>>> {
        match self.xlu.list(&self.c_key(key)?) {
            Setting::Found(items) => self.texts(key, items).map(Err),
            _ => self.flag(key).map(Ok),
        }
    }

    /// A [`DomainSpec::validate`](crate::DomainSpec::validate) error, pointed at the key the
    /// field came from.
    pub(crate) fn spec_error(&self, e: Error) -> Error {
        let Error::InvalidSpec { field, value, reason } = e else { return e };
        let reason = if value.is_empty() { reason } else { format!("{value:?}: {reason}") };
        let (key, index) = key_of_field(&field);
        match index {
            Some(i) => self.item_err(key, i, reason),
            None if self.has(key) => self.err(key, reason),
            None => self.err_missing(key, reason),
        }
    }
}

/// The xl.cfg key (and list index) a `DomainSpec` field name comes from.
fn key_of_field(field: &str) -> (&str, Option<usize>) {
    for (prefix, key) in [
        ("disks[", "disk"),
        ("vifs[", "vif"),
        ("pcis[", "pci"),
        ("usb_controllers[", "usbctrl"),
        ("usb_host_devices[", "usbdev"),
        ("resources.ioports[", "ioports"),
        ("resources.irqs[", "irqs"),
        ("resources.iomem[", "iomem"),
        ("resources.dtdevs[", "dtdev"),
    ] {
        if let Some(rest) = field.strip_prefix(prefix) {
            let index = rest.split(']').next().and_then(|n| n.parse().ok());
            return (key, index);
        }
    }
    if let Some(key) = crate::tuning::xl_key_of_field(field) {
        return key;
    }
    if field.starts_with("vcpu_cpus") {
        return ("cpus", None);
    }
    if field.starts_with("platform.viridian") {
        return ("viridian", None);
    }
    let key = match field {
        "cpu_cap" => "cap",
        "usb_version" => "usbversion",
        "usb_device" | "usb_devices" => "usbdevice",
        "serial_ports" => "serial",
        "display.video_memory_mib" => "videoram",
        "display.keymap" | "display" => "keymap",
        "display.vnc_disabled" => "vnc",
        "platform.nested_hvm" => "nestedhvm",
        "platform.shadow_memory_mib" => "shadow_memory",
        "platform.disable_migrate" => "nomigrate",
        "resources.rdm_mem_boundary_mib" => "rdm_mem_boundary",
        other => other
            .strip_prefix("platform.")
            .or(other.strip_prefix("display."))
            .or(other.strip_prefix("resources."))
            .unwrap_or(other),
    };
    (key, None)
}

/// libxlutil's report of a syntax error ("SOURCE:LINE: config parsing error near ...") as an
/// error with that line, and the key assigned there (or whose list has an item there) when
/// the scan of `data` finds one.
fn syntax_error(source: &str, data: &[u8], report: &str, rc: i32) -> Error {
    let first = report.lines().find_map(|l| {
        let rest = l.strip_prefix(source)?.strip_prefix(':')?;
        let (line, msg) = rest.split_once(':')?;
        Some((line.trim().parse::<u32>().ok()?, msg.trim().to_string()))
    });
    let python =
        if report.contains("Python") { " (the file looks like Python code, which xl no longer accepts)" } else { "" };
    let (line, reason) = match first {
        Some((line, msg)) => (Some(line), format!("{msg}{python}")),
        None if report.trim().is_empty() => (None, std::io::Error::from_raw_os_error(rc).to_string()),
        None => (None, report.trim().to_string()),
    };
    let key = line.and_then(|line| {
        let scan = KeyLines::scan(data);
        let mut there = scan.assignments().iter().filter(|a| a.line == line || a.items.contains(&line));
        match (there.next(), there.next()) {
            (Some(a), None) => Some(a.key.clone()),
            _ => None,
        }
    });
    Error::XlConfig { file: source.to_string(), line, key, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_map_to_keys() {
        assert_eq!(key_of_field("disks[2].vdev"), ("disk", Some(2)));
        assert_eq!(key_of_field("vifs[0].mac"), ("vif", Some(0)));
        assert_eq!(key_of_field("pcis[1]"), ("pci", Some(1)));
        assert_eq!(key_of_field("maxmem"), ("maxmem", None));
        assert_eq!(key_of_field("platform.pae"), ("pae", None));
        assert_eq!(key_of_field("platform.nested_hvm"), ("nestedhvm", None));
        assert_eq!(key_of_field("cpu_cap"), ("cap", None));
    }

    fn refusal(data: &[u8]) -> String {
        match Reader::new("g.cfg", data, None) {
            Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(data)),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_nul_in_a_string_is_an_error_not_an_abort() {
        // libxlutil's dequote asserts on these: the test process would die of SIGABRT.
        assert_eq!(
            refusal(b"name = 'g'\nkernel = \"/k\0x\"\n"),
            "g.cfg:2: kernel: a NUL byte inside a quoted string (xl's parser would abort on it)"
        );
        assert!(refusal(b"extra = \"a\\\"\0\"").starts_with("g.cfg:1: extra: a NUL byte"));
    }

    #[test]
    fn a_pci_address_without_its_dot_is_an_error_not_a_crash() {
        // The xl_cfg fuzz target's SIGSEGV in libxlutil's parse_bdf (an unset %n).
        let text = "name = 'g'\nkernel = '/k'\npci = [ '0000:00:03.0',\n        '00:04/0,permissive=0,seize=1' ]\n";
        let e = crate::DomainSpec::from_xl_config_text("g.cfg", text).unwrap_err().to_string();
        assert!(
            e.starts_with("g.cfg:4: pci[1]: \"00:04/0,permissive=0,seize=1\": a PCI address needs its function"),
            "{e}"
        );
    }

    #[test]
    fn appends_that_would_cost_quadratic_memory_are_refused() {
        // 72 KiB of text; without the guard libxlutil keeps 4,000 ever longer copies (144 MB).
        let text = "extra += \"0123456789abcdef\"\n".repeat(4000);
        let e = refusal(text.as_bytes());
        assert!(e.starts_with("g.cfg:") && e.contains(": extra: too many `+=`"), "{e}");
    }

    /// A syntax error on a line that assigns a key, or holds an item of its list, names it.
    #[test]
    fn syntax_errors_name_the_key_of_their_line() {
        let text = "name = \"g\"\nextra = \"a \\x41\"\n";
        let e = Reader::new("g.cfg", text.as_bytes(), None).err().unwrap().to_string();
        assert!(e.starts_with("g.cfg:2: extra: config parsing error near"), "{e}");
        let text = "name = \"g\"\ndisk = [\n  'a',\n  \"b\\x4\",\n]\n";
        let e = Reader::new("g.cfg", text.as_bytes(), None).err().unwrap().to_string();
        assert!(e.starts_with("g.cfg:4: disk: config parsing error near"), "{e}");
        // Not an assignment: no key.
        let e = Reader::new("g.cfg", b"name = \"g\"\n@@@\n", None).err().unwrap().to_string();
        assert!(e.starts_with("g.cfg:2: config parsing error"), "{e}");
    }

    #[test]
    fn syntax_errors_keep_libxlutils_line_and_words() {
        let e = syntax_error(
            "g.cfg",
            b"",
            "g.cfg:7: config parsing error near `(': lexical error\nwarning: Config file looks like it contains Python code.\n",
            22,
        );
        let Error::XlConfig { line, key, reason, .. } = &e else { panic!("{e:?}") };
        assert_eq!((*line, key.as_deref()), (Some(7), None));
        assert!(
            reason.starts_with("config parsing error near `(': lexical error (the file looks like Python"),
            "{reason}"
        );
        let e = syntax_error("g.cfg", b"", "", 12);
        assert!(e.to_string().starts_with("g.cfg: Cannot allocate memory"), "{e}");
    }
}
