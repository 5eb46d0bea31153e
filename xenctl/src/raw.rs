//! Ownership helpers at the C boundary: an owning guard for libxl's init/dispose structs,
//! malloc'd strings and arrays that libxl will later `free()`, and reading C strings back.
//!
//! The rule these enforce: every libxl struct is `_init`ed exactly once when its guard is made
//! and `_dispose`d exactly once when the guard drops; every pointer libxl will free is stored in
//! its owning struct the moment it is allocated, before anything else can fail.

use std::ffi::{CStr, CString, c_char};
use std::ptr::{self, NonNull};

use crate::error::{Error, Result};

/// A libxl struct with the usual `libxl_<type>_init` / `libxl_<type>_dispose` pair.
///
/// # Safety
/// `init` must leave any (even uninitialised) memory in a state `dispose` accepts, and
/// `dispose` must free everything the struct owns.
pub(crate) unsafe trait LibxlStruct: Sized {
    /// Initialises `*p` in place.
    ///
    /// # Safety
    /// `p` must be valid for writes of `Self`.
    unsafe fn init(p: *mut Self);
    /// Frees what `*p` owns.
    ///
    /// # Safety
    /// `*p` must have been initialised by `init` and not disposed since.
    unsafe fn dispose(p: *mut Self);
}

macro_rules! libxl_struct {
    ($($ty:ident => $init:ident, $dispose:ident;)*) => {
        $(
            // SAFETY: libxl's generated _init zeroes the struct and sets defaults; its _dispose
            // frees every owned member (tools/libs/light/gentypes.py), which is the contract.
            unsafe impl LibxlStruct for xen_sys::$ty {
                unsafe fn init(p: *mut Self) {
                    // SAFETY: the caller guarantees p is valid for writes.
                    unsafe { xen_sys::$init(p) }
                }
                unsafe fn dispose(p: *mut Self) {
                    // SAFETY: the caller guarantees *p was initialised and not yet disposed.
                    unsafe { xen_sys::$dispose(p) }
                }
            }
        )*
    };
}

libxl_struct! {
    libxl_domain_config => libxl_domain_config_init, libxl_domain_config_dispose;
    libxl_dominfo => libxl_dominfo_init, libxl_dominfo_dispose;
    libxl_physinfo => libxl_physinfo_init, libxl_physinfo_dispose;
    libxl_device_pci => libxl_device_pci_init, libxl_device_pci_dispose;
    libxl_device_disk => libxl_device_disk_init, libxl_device_disk_dispose;
    libxl_device_nic => libxl_device_nic_init, libxl_device_nic_dispose;
    libxl_domain_restore_params => libxl_domain_restore_params_init, libxl_domain_restore_params_dispose;
}

/// An initialised libxl struct on the heap (stable address), disposed exactly once on drop.
pub(crate) struct Owned<T: LibxlStruct> {
    ptr: NonNull<T>,
}

impl<T: LibxlStruct> Owned<T> {
    /// Allocates and `_init`s a `T`.
    pub(crate) fn new() -> Owned<T> {
        let boxed: Box<std::mem::MaybeUninit<T>> = Box::new_uninit();
        let raw = Box::into_raw(boxed).cast::<T>();
        // SAFETY: raw is a fresh, writable allocation of size_of::<T>().
        unsafe { T::init(raw) };
        Owned {
            // SAFETY: Box::into_raw never returns null.
            ptr: unsafe { NonNull::new_unchecked(raw) },
        }
    }

    pub(crate) fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<T: LibxlStruct> std::ops::Deref for Owned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: ptr is valid and initialised for the guard's life; &self forbids mutation.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: LibxlStruct> std::ops::DerefMut for Owned<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for Deref, and &mut self makes this the only reference.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: LibxlStruct> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: initialised in new(), disposed only here, and the box is freed right after.
        unsafe {
            T::dispose(self.ptr.as_ptr());
            drop(Box::from_raw(self.ptr.as_ptr()));
        }
    }
}

impl<T: LibxlStruct> std::fmt::Debug for Owned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Owned<{}>", std::any::type_name::<T>())
    }
}

/// A `CString` for passing a borrowed string into C; a NUL byte is an error naming `field`.
pub(crate) fn c_string(field: &str, value: &str) -> Result<CString> {
    CString::new(value).map_err(|_| Error::invalid(field, value, "contains a NUL byte"))
}

/// A `malloc`ed copy of `value` for a struct member libxl will `free()`.
pub(crate) fn strdup(field: &str, value: &str) -> Result<*mut c_char> {
    let c = c_string(field, value)?;
    // SAFETY: c is a valid NUL-terminated string; strdup copies it into malloc'd memory.
    let p = unsafe { libc::strdup(c.as_ptr()) };
    if p.is_null() { Err(Error::OutOfMemory { op: "building the domain config" }) } else { Ok(p) }
}

/// `Some(strdup(value))` or a null pointer for `None`.
pub(crate) fn strdup_opt(field: &str, value: Option<&str>) -> Result<*mut c_char> {
    match value {
        Some(v) => strdup(field, v),
        None => Ok(ptr::null_mut()),
    }
}

/// A zeroed, `calloc`ed array of `n` `T`s for a struct member libxl will `free()`, or null for 0.
pub(crate) fn calloc_array<T>(n: usize) -> Result<*mut T> {
    if n == 0 {
        return Ok(ptr::null_mut());
    }
    // SAFETY: calloc with a non-zero count; it checks count * size for overflow itself.
    let p = unsafe { libc::calloc(n, size_of::<T>()) }.cast::<T>();
    if p.is_null() { Err(Error::OutOfMemory { op: "building the domain config" }) } else { Ok(p) }
}

/// Reads a C string into an owned `String` (lossily), or `None` for null.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string valid for the duration of the call.
pub(crate) unsafe fn string_from_c(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-null and NUL-terminated per the caller's guarantee.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// A `malloc`ed C string returned by libxl that the caller must `free()`.
pub(crate) struct MallocString(NonNull<c_char>);

impl MallocString {
    /// Takes ownership of `p`, or `None` if it is null.
    ///
    /// # Safety
    /// `p` must be null or a NUL-terminated string allocated with `malloc` and owned by nobody else.
    pub(crate) unsafe fn from_raw(p: *mut c_char) -> Option<MallocString> {
        NonNull::new(p).map(MallocString)
    }

    pub(crate) fn to_string_lossy(&self) -> String {
        // SAFETY: from_raw's contract: a valid NUL-terminated string we own.
        unsafe { CStr::from_ptr(self.0.as_ptr()) }.to_string_lossy().into_owned()
    }
}

impl Drop for MallocString {
    fn drop(&mut self) {
        // SAFETY: allocated by malloc (from_raw's contract) and freed only here.
        unsafe { libc::free(self.0.as_ptr().cast()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_bytes_are_errors_naming_the_field() {
        let err = c_string("name", "a\0b").unwrap_err();
        assert_eq!(err.to_string(), "invalid name \"a\\0b\": contains a NUL byte");
        assert!(strdup("cmdline", "x\0").is_err());
    }

    #[test]
    fn strdup_round_trips() {
        let p = strdup("name", "guest-1").unwrap();
        // SAFETY: p is a malloc'd NUL-terminated string we own.
        let owned = unsafe { MallocString::from_raw(p) }.unwrap();
        assert_eq!(owned.to_string_lossy(), "guest-1");
        assert!(strdup_opt("ramdisk", None).unwrap().is_null());
    }

    #[test]
    fn owned_structs_init_and_dispose() {
        let mut pci = Owned::<xen_sys::libxl_device_pci>::new();
        pci.name = strdup("pci.name", "nic0").unwrap();
        drop(pci); // disposes: frees name (run under valgrind/ASan to see no leak)
        assert!(calloc_array::<u8>(0).unwrap().is_null());
    }
}
