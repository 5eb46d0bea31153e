//! Routes libxl's (xentoollog's) messages into the `log` crate, keeping their level.
//!
//! The C shim in xen-sys formats each message; this module supplies the callback and owns the
//! `xentoollog_logger`. Messages are logged with target `xen::<context>` (e.g. `xen::libxl`,
//! `xen::xc`), so `RUST_LOG=xen=debug` shows libxl's own debug output.

use std::ffi::{c_char, c_int, c_void};
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::raw;

/// xentoollog levels are a C enum (unsigned in the bindings) but travel as `int`.
const fn xtl(level: xen_sys::xentoollog_level) -> c_int {
    level as c_int
}

/// Maps a xentoollog level to a `log` level.
pub(crate) fn log_level(xtl_level: c_int) -> log::Level {
    match xtl_level {
        l if l >= xtl(xen_sys::XTL_ERROR) => log::Level::Error, // ERROR, CRITICAL
        l if l >= xtl(xen_sys::XTL_WARN) => log::Level::Warn,
        l if l >= xtl(xen_sys::XTL_PROGRESS) => log::Level::Info, // PROGRESS, INFO, NOTICE
        l if l >= xtl(xen_sys::XTL_DETAIL) => log::Level::Debug,
        _ => log::Level::Trace, // DEBUG, VERBOSE
    }
}

/// Asked by the C shim before it formats a message: is its level within the `log` crate's
/// maximum *now*? (So raising the level at run time shows libxl's debug output too.)
///
/// # Safety
/// Called only by the C shim; it reads no pointer.
unsafe extern "C" fn log_enabled(_user: *mut c_void, level: c_int) -> c_int {
    c_int::from(log_level(level) <= log::max_level())
}

/// Called by the C shim for each message, on whatever thread libxl logged from.
///
/// # Safety
/// `context` must be null or, like `message` (never null), a NUL-terminated string valid for
/// the call: the shim's contract (xen_sys_logger.h).
unsafe extern "C" fn log_message(
    _user: *mut c_void,
    level: c_int,
    errnoval: c_int,
    context: *const c_char,
    message: *const c_char,
) {
    // Never unwind into C: a panic here would abort the process.
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: the shim passes NUL-terminated strings valid for this call (context may be null).
        let context = unsafe { raw::string_from_c(context) }.unwrap_or_else(|| "libxl".into());
        // SAFETY: as above; message is never null.
        let message = unsafe { raw::string_from_c(message) }.unwrap_or_default();
        let target = match context.as_str() {
            "libxl" => "xen::libxl",
            "xc" => "xen::xc",
            "xenstore" | "xs" => "xen::xenstore",
            _ => "xen",
        };
        let level = log_level(level);
        if errnoval >= 0 {
            let os = std::io::Error::from_raw_os_error(errnoval);
            log::log!(target: target, level, "{context}: {message}: {os}");
        } else {
            log::log!(target: target, level, "{context}: {message}");
        }
    });
}

/// An owned xentoollog logger feeding `log`.
pub(crate) struct Logger(NonNull<xen_sys::xentoollog_logger>);

// SAFETY: the logger is immutable once made (the shim only reads its fields) and its callbacks
// are thread-safe (the `log` crate's are), so libxl may log through it from any thread, which
// it does; it is destroyed once, by its owner, after the ctx that used it.
unsafe impl Send for Logger {}
// SAFETY: as above.
unsafe impl Sync for Logger {}

impl Logger {
    pub(crate) fn new() -> Result<Logger> {
        // SAFETY: log_message and log_enabled match the shim's function types and, being plain
        // functions, live forever; the user pointer is unused.
        let p = unsafe { xen_sys::xen_sys_logger_new(Some(log_message), Some(log_enabled), std::ptr::null_mut()) };
        NonNull::new(p).map(Logger).ok_or(Error::OutOfMemory { op: "creating the libxl logger" })
    }

    pub(crate) fn as_ptr(&self) -> *mut xen_sys::xentoollog_logger {
        self.0.as_ptr()
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        // SAFETY: made by xen_sys_logger_new and destroyed once, after the ctx that used it.
        unsafe { xen_sys::xtl_logger_destroy(self.0.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_one_to_one_in_order() {
        assert_eq!(log_level(xtl(xen_sys::XTL_DEBUG)), log::Level::Trace);
        assert_eq!(log_level(xtl(xen_sys::XTL_VERBOSE)), log::Level::Trace);
        assert_eq!(log_level(xtl(xen_sys::XTL_DETAIL)), log::Level::Debug);
        assert_eq!(log_level(xtl(xen_sys::XTL_PROGRESS)), log::Level::Info);
        assert_eq!(log_level(xtl(xen_sys::XTL_INFO)), log::Level::Info);
        assert_eq!(log_level(xtl(xen_sys::XTL_NOTICE)), log::Level::Info);
        assert_eq!(log_level(xtl(xen_sys::XTL_WARN)), log::Level::Warn);
        assert_eq!(log_level(xtl(xen_sys::XTL_ERROR)), log::Level::Error);
        assert_eq!(log_level(xtl(xen_sys::XTL_CRITICAL)), log::Level::Error);
    }

    /// Records every `log` record whose target starts with "xen".
    struct Capture(parking_lot::Mutex<Vec<(log::Level, String, String)>>);

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            if record.target().starts_with("xen") {
                self.0.lock().push((record.level(), record.target().to_string(), record.args().to_string()));
            }
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture(parking_lot::Mutex::new(Vec::new()));

    #[test]
    fn messages_reach_log_formatted_and_with_their_level() {
        let _ = log::set_logger(&CAPTURE);
        log::set_max_level(log::LevelFilter::Trace);
        let logger = Logger::new().unwrap();
        let fmt = std::ffi::CString::new("value %d of %s").unwrap();
        let arg = std::ffi::CString::new("a-long-argument-".repeat(100)).unwrap();
        // SAFETY: a live logger and a printf format matching its arguments.
        unsafe {
            xen_sys::xtl_log(logger.as_ptr(), xen_sys::XTL_WARN, 2, c"libxl".as_ptr(), fmt.as_ptr(), 42, arg.as_ptr());
            xen_sys::xtl_log(logger.as_ptr(), xen_sys::XTL_DEBUG, -1, c"xc".as_ptr(), c"plain".as_ptr());
        }
        let seen = CAPTURE.0.lock().clone();
        let expected_long =
            format!("libxl: value 42 of {}: {}", "a-long-argument-".repeat(100), std::io::Error::from_raw_os_error(2));
        assert!(seen.contains(&(log::Level::Warn, "xen::libxl".into(), expected_long)), "{seen:?}");
        assert!(seen.contains(&(log::Level::Trace, "xen::xc".into(), "xc: plain".into())), "{seen:?}");

        // The threshold is the `log` crate's current one, not the one at the logger's creation.
        log::set_max_level(log::LevelFilter::Warn);
        // SAFETY: as above.
        unsafe {
            xen_sys::xtl_log(logger.as_ptr(), xen_sys::XTL_DEBUG, -1, c"xc".as_ptr(), c"hidden".as_ptr());
            xen_sys::xtl_log(logger.as_ptr(), xen_sys::XTL_ERROR, -1, c"xc".as_ptr(), c"shown".as_ptr());
        }
        log::set_max_level(log::LevelFilter::Trace);
        let seen = CAPTURE.0.lock().clone();
        assert!(!seen.iter().any(|(_, _, m)| m == "xc: hidden"), "{seen:?}");
        assert!(seen.contains(&(log::Level::Error, "xen::xc".into(), "xc: shown".into())), "{seen:?}");
    }
}
