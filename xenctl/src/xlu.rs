//! libxlutil, the parser library behind `xl`: an owned `XLU_Config` whose error report is
//! captured in memory, so that parse errors come back as text instead of going to stderr.

use std::ffi::{CStr, c_char};
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
        Ok(XluConfig { cfg, report, storage })
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
}
