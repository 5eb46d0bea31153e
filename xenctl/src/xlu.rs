//! libxlutil, the parser library behind `xl`: an owned `XLU_Config` whose error report is
//! captured in memory, so that parse errors come back as text instead of going to stderr, and
//! typed reads of the settings it parsed (copied out into Rust strings at once).

use std::ffi::{CStr, c_char, c_int, c_long};
use std::ptr::{self, NonNull};

use crate::error::{Error, Result};
use crate::raw;

/// Where `open_memstream` keeps its buffer pointer and length. glibc writes these two
/// locations on every `fflush`/`fclose`, so they live on the heap for the stream's whole life.
struct ReportStorage {
    buf: *mut c_char,
    len: libc::size_t,
}

/// An `XLU_Config` plus the in-memory `FILE` it reports errors to.
pub(crate) struct XluConfig {
    cfg: NonNull<xen_sys::XLU_Config>,
    report: NonNull<libc::FILE>,
    storage: Box<ReportStorage>,
    /// How much of the report [`XluConfig::take_report`] has already handed out.
    report_taken: usize,
}

/// A setting read from a parsed config: absent, present, or present with the other shape
/// (a list where a single value was asked for, or the reverse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Setting<T> {
    /// The key is not set.
    Missing,
    /// The key's value.
    Found(T),
    /// The key is set, but libxlutil refused the value: the other shape, or (for numbers) not
    /// a number. The text is libxlutil's own warning, if it gave one.
    Invalid(String),
}

/// A list item: a string, or a nested list (which no xl key accepts but `vsnd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListItem {
    /// A quoted or bare string.
    Text(String),
    /// A nested list.
    List,
}

/// An item of a list of lists (`vsnd`): a string, or a list whose own items are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NestedItem {
    /// A quoted or bare string.
    Text(String),
    /// A list, with its items.
    List(Vec<ListItem>),
}

impl XluConfig {
    /// A parser context whose error messages start with `source` (a file name or a label).
    pub(crate) fn new(source: &str) -> Result<XluConfig> {
        let source_c = raw::c_string("config source", source)?;
        let mut storage = Box::new(ReportStorage { buf: ptr::null_mut(), len: 0 });
        // SAFETY: both pointers point into the boxed storage, which outlives the stream
        // (XluConfig owns both and closes the stream in Drop before the box is freed).
        let report = unsafe { libc::open_memstream(&mut storage.buf, &mut storage.len) };
        let Some(report) = NonNull::new(report) else {
            return Err(Error::OutOfMemory { op: "opening libxlutil's report stream" });
        };
        // SAFETY: report is an open FILE*; xlu_cfg_init copies the source name.
        let cfg = unsafe { xen_sys::xlu_cfg_init(report.as_ptr().cast(), source_c.as_ptr()) };
        let Some(cfg) = NonNull::new(cfg) else {
            // SAFETY: report is open and ours; after fclose storage.buf is malloc'd and ours.
            unsafe {
                libc::fclose(report.as_ptr());
                libc::free(storage.buf.cast());
            }
            return Err(Error::OutOfMemory { op: "xlu_cfg_init" });
        };
        Ok(XluConfig { cfg, report, storage, report_taken: 0 })
    }

    /// Parses config text (xl.cfg syntax) into this config's settings, as `xl create` does with
    /// the file's contents. On failure the report holds libxlutil's messages.
    pub(crate) fn read_data(&mut self, data: &[u8]) -> std::result::Result<(), c_int> {
        let len = c_int::try_from(data.len()).map_err(|_| libc::EFBIG)?;
        // SAFETY: cfg is live; data is valid for len bytes during the call (libxlutil's
        // scanner copies it and needs no terminating NUL).
        let rc = unsafe { xen_sys::xlu_cfg_readdata(self.cfg.as_ptr(), data.as_ptr().cast(), len) };
        if rc == 0 { Ok(()) } else { Err(rc) }
    }

    /// A single-valued setting as text. A non-UTF-8 value is `Invalid`.
    pub(crate) fn string(&mut self, key: &CStr) -> Setting<String> {
        let mut value: *const c_char = ptr::null();
        // SAFETY: cfg is live; key is a valid C string; value is a valid out-pointer. With
        // dont_warn=1 nothing is reported; we name the problem ourselves.
        let rc = unsafe { xen_sys::xlu_cfg_get_string(self.cfg.as_ptr(), key.as_ptr(), &mut value, 1) };
        match rc {
            0 => {
                // SAFETY: on success value points at the setting's string, owned by cfg,
                // which is alive and unchanged for this call.
                let text = unsafe { CStr::from_ptr(value) };
                text.to_str().map_or_else(|_| Setting::Invalid("not UTF-8 text".into()), |t| Setting::Found(t.into()))
            }
            libc::ESRCH => Setting::Missing,
            _ => Setting::Invalid("a list, where xl expects a single value".into()),
        }
    }

    /// A single-valued setting as a number, parsed as libxlutil parses numbers (C `strtol`
    /// with base 0: `0x10` is hex, `010` octal).
    pub(crate) fn long(&mut self, key: &CStr) -> Setting<i64> {
        let mut value: c_long = 0;
        self.take_report();
        // SAFETY: cfg is live; key is a valid C string; value is a valid out-pointer. Its
        // warnings (with the reason) go to our report stream.
        let rc = unsafe { xen_sys::xlu_cfg_get_long(self.cfg.as_ptr(), key.as_ptr(), &mut value, 0) };
        match rc {
            0 => Setting::Found(value),
            libc::ESRCH => Setting::Missing,
            _ => {
                let report = self.take_report();
                // libxlutil says "<source>:<line>: warning: <reason>"; keep the reason.
                let reason = report.lines().last().and_then(|l| l.split_once("warning: ")).map(|(_, r)| r.trim());
                Setting::Invalid(reason.unwrap_or("not a number").to_string())
            }
        }
    }

    /// libxlutil's list `key` and its item count; `Err` holds what to answer when the key is
    /// missing or not a list.
    fn raw_list<T>(&mut self, key: &CStr) -> Result<(*mut xen_sys::XLU_ConfigList, c_int), Setting<T>> {
        let mut list: *mut xen_sys::XLU_ConfigList = ptr::null_mut();
        let mut count: c_int = 0;
        // SAFETY: cfg is live; key is a valid C string; list and count are valid out-pointers;
        // with dont_warn=1 nothing is reported.
        let rc = unsafe { xen_sys::xlu_cfg_get_list(self.cfg.as_ptr(), key.as_ptr(), &mut list, &mut count, 1) };
        match rc {
            0 => Ok((list, count)),
            libc::ESRCH => Err(Setting::Missing),
            _ => Err(Setting::Invalid("a single value, where xl expects a list [ ... ]".into())),
        }
    }

    /// A list setting: its items, in order.
    pub(crate) fn list(&mut self, key: &CStr) -> Setting<Vec<ListItem>> {
        let (list, count) = match self.raw_list(key) {
            Ok(found) => found,
            Err(setting) => return setting,
        };
        let items = (0..count)
            .map(|i| {
                // SAFETY: list belongs to cfg (alive); i is within its count. NULL means the
                // item is not a string (a nested list).
                let item = unsafe { xen_sys::xlu_cfg_get_listitem(list, i) };
                if item.is_null() {
                    return ListItem::List;
                }
                // SAFETY: a non-NULL item is a NUL-terminated string owned by cfg.
                ListItem::Text(unsafe { CStr::from_ptr(item) }.to_string_lossy().into_owned())
            })
            .collect();
        Setting::Found(items)
    }

    /// A list setting whose items may be lists themselves (`vsnd`): each item, and a list
    /// item's own items.
    pub(crate) fn nested_list(&mut self, key: &CStr) -> Setting<Vec<NestedItem>> {
        let (list, count) = match self.raw_list(key) {
            Ok(found) => found,
            Err(setting) => return setting,
        };
        let items = (0..count)
            .map(|i| {
                // SAFETY: list belongs to cfg (alive); i is within its count, so the value is
                // one of the list's, owned by cfg.
                let value = unsafe { xen_sys::xlu_cfg_get_listitem2(list, i) };
                // SAFETY: value is a valid value of cfg.
                if unsafe { xen_sys::xlu_cfg_value_type(value) } != xen_sys::XLU_LIST {
                    // SAFETY: a string value: its string is NUL-terminated and owned by cfg.
                    let text = unsafe { xen_sys::xlu_cfg_get_listitem(list, i) };
                    // SAFETY: non-NULL for a string item, as just checked.
                    return NestedItem::Text(unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned());
                }
                let mut inner: *mut xen_sys::XLU_ConfigList = ptr::null_mut();
                // SAFETY: cfg and value are live; inner is a valid out-pointer; with dont_warn=1
                // nothing is reported. For a list value it sets inner to the value's own list.
                let rc = unsafe { xen_sys::xlu_cfg_value_get_list(self.cfg.as_ptr(), value, &mut inner, 1) };
                let mut texts = Vec::new();
                if rc != 0 || inner.is_null() {
                    return NestedItem::List(texts);
                }
                for j in 0..c_int::MAX {
                    // SAFETY: inner belongs to cfg; get_listitem2 bounds-checks j (NULL past the end).
                    let item = unsafe { xen_sys::xlu_cfg_get_listitem2(inner, j) };
                    if item.is_null() {
                        break;
                    }
                    // SAFETY: item is one of inner's values, owned by cfg.
                    if unsafe { xen_sys::xlu_cfg_value_type(item) } == xen_sys::XLU_LIST {
                        texts.push(ListItem::List);
                        continue;
                    }
                    // SAFETY: item j of inner is a string: NUL-terminated and owned by cfg.
                    let text = unsafe { CStr::from_ptr(xen_sys::xlu_cfg_get_listitem(inner, j)) };
                    texts.push(ListItem::Text(text.to_string_lossy().into_owned()));
                }
                NestedItem::List(texts)
            })
            .collect();
        Setting::Found(items)
    }

    pub(crate) fn as_ptr(&self) -> *mut xen_sys::XLU_Config {
        self.cfg.as_ptr()
    }

    /// Everything libxlutil reported so far, trimmed.
    pub(crate) fn report_text(&mut self) -> String {
        // SAFETY: report is open; fflush updates storage.buf/len to a NUL-terminated buffer.
        unsafe { libc::fflush(self.report.as_ptr()) };
        if self.storage.buf.is_null() {
            return String::new();
        }
        // SAFETY: after fflush, buf is a valid NUL-terminated string owned by the stream.
        let text = unsafe { CStr::from_ptr(self.storage.buf) };
        text.to_string_lossy().trim().to_string()
    }

    /// What libxlutil reported since the last call (untrimmed; may be empty).
    pub(crate) fn take_report(&mut self) -> String {
        // SAFETY: report is open; fflush updates storage.buf/len.
        unsafe { libc::fflush(self.report.as_ptr()) };
        if self.storage.buf.is_null() || self.storage.len <= self.report_taken {
            return String::new();
        }
        // SAFETY: after fflush, buf holds len valid bytes owned by the stream.
        let all = unsafe { std::slice::from_raw_parts(self.storage.buf.cast::<u8>(), self.storage.len) };
        let text = String::from_utf8_lossy(&all[self.report_taken..]).into_owned();
        self.report_taken = self.storage.len;
        text
    }
}

impl Drop for XluConfig {
    fn drop(&mut self) {
        // SAFETY: cfg came from xlu_cfg_init and is destroyed exactly once, before the report
        // stream it writes to; then the stream is closed, after which glibc hands storage.buf
        // (malloc'd) to us to free.
        unsafe {
            xen_sys::xlu_cfg_destroy(self.cfg.as_ptr());
            libc::fclose(self.report.as_ptr());
            libc::free(self.storage.buf.cast());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_starts_empty() {
        let mut cfg = XluConfig::new("test").unwrap();
        assert_eq!(cfg.report_text(), "");
    }

    #[test]
    fn settings_read_back_typed() {
        let mut cfg = XluConfig::new("t.cfg").unwrap();
        cfg.read_data(b"name = \"a\"\nmemory = 0x100\nbad = \"12x\"\ndisk = [ 'x', ['y'] ]\n").unwrap();
        assert_eq!(cfg.string(c"name"), Setting::Found("a".into()));
        assert_eq!(cfg.string(c"nope"), Setting::Missing);
        assert!(matches!(cfg.string(c"disk"), Setting::Invalid(_)));
        assert_eq!(cfg.long(c"memory"), Setting::Found(256));
        assert_eq!(cfg.long(c"bad"), Setting::Invalid("parameter `bad' is not a valid number".into()));
        assert_eq!(cfg.list(c"disk"), Setting::Found(vec![ListItem::Text("x".into()), ListItem::List]));
        assert!(matches!(cfg.list(c"name"), Setting::Invalid(_)));
        assert_eq!(cfg.take_report(), "");
    }

    #[test]
    fn syntax_errors_are_reported_with_the_line() {
        let mut cfg = XluConfig::new("t.cfg").unwrap();
        assert!(cfg.read_data(b"name = \"a\"\nmemory = = 3\n").is_err());
        assert!(cfg.take_report().starts_with("t.cfg:2: config parsing error near `='"));
    }
}
