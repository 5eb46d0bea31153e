//! Generates the raw bindings from `vendor-headers/` (never the system's Xen headers), builds
//! the small C logger shim, and links libxenlight, libxlutil, libxenstore and libxentoollog.

// A build script reports failure by panicking with a message; that is the intended use here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::cell::RefCell;
use std::env;
use std::path::{Path, PathBuf};
use std::rc::Rc;

const INSTALL_HINT: &str = "the Xen 4.17 development libraries are missing: apt-get install libxen-dev";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let vendor = manifest_dir.join("../vendor-headers");
    let vendor_include = vendor.join("include");
    let shim_dir = manifest_dir.join("c");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    for path in ["wrapper.h", "c/xen_sys_logger.c", "c/xen_sys_logger.h"] {
        println!("cargo:rerun-if-changed={}", manifest_dir.join(path).display());
    }
    println!("cargo:rerun-if-changed={}", vendor.display());

    let xen_version = vendored_xen_version(&vendor.join("VERSION"));
    println!("cargo:rustc-env=XEN_SYS_VENDORED_XEN_VERSION={xen_version}");

    link_libraries();

    cc::Build::new()
        .file(shim_dir.join("xen_sys_logger.c"))
        .include(&vendor_include)
        .include(&shim_dir)
        .warnings(true)
        .extra_warnings(true)
        .compile("xen_sys_logger");

    let included = Rc::new(RefCell::new(Vec::new()));
    let bindings = bindgen::Builder::default()
        .header(manifest_dir.join("wrapper.h").to_string_lossy())
        .clang_arg(format!("-I{}", vendor_include.display()))
        .clang_arg(format!("-I{}", shim_dir.display()))
        .parse_callbacks(Box::new(IncludeRecorder(Rc::clone(&included))))
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .rust_edition(bindgen::RustEdition::Edition2024)
        .allowlist_function("libxl_.*|xlu_.*|xs_.*|xtl_.*|xen_sys_.*")
        .allowlist_type("libxl_.*|xlu_.*|XLU_.*|xs_.*|xentoollog_.*|xen_sys_.*")
        .allowlist_var("LIBXL_.*|ERROR_.*|XTL_.*|XS_.*|XBT_NULL|INVALID_DOMID|RANDOM_DOMID")
        // C enums become typed integer constants: a value libxl adds later is still representable.
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .layout_tests(true)
        .derive_default(true)
        .derive_debug(true)
        .impl_debug(false)
        .generate_comments(true)
        .generate()
        .unwrap_or_else(|err| panic!("bindgen failed on xen-sys/wrapper.h: {err}"));

    check_headers_are_vendored(&included.borrow(), &vendor_include, &shim_dir);

    bindings.write_to_file(out_dir.join("bindings.rs")).unwrap_or_else(|err| panic!("cannot write bindings.rs: {err}"));
}

/// The `xen-version:` line of vendor-headers/VERSION, e.g. `4.17.7`.
fn vendored_xen_version(version_file: &Path) -> String {
    let text = std::fs::read_to_string(version_file)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", version_file.display()));
    text.lines()
        .find_map(|line| line.strip_prefix("xen-version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("{} has no xen-version: line", version_file.display()))
}

fn link_libraries() {
    for (pkg, lib) in [("xenlight", "xenlight"), ("xenstore", "xenstore"), ("xentoollog", "xentoollog")] {
        if let Err(err) = pkg_config::Config::new().cargo_metadata(true).probe(pkg) {
            panic!("{INSTALL_HINT} (pkg-config cannot find {pkg}: {err}; need lib{lib}.so)");
        }
    }
    // libxlutil ships no .pc file; it lives beside libxenlight.
    let libdir = pkg_config::get_variable("xenlight", "libdir").unwrap_or_else(|err| panic!("{INSTALL_HINT} ({err})"));
    if !Path::new(&libdir).join("libxlutil.so").exists() {
        panic!("{INSTALL_HINT} (no libxlutil.so in {libdir})");
    }
    println!("cargo:rustc-link-search=native={libdir}");
    println!("cargo:rustc-link-lib=dylib=xlutil");
}

/// Fails the build if any Xen header was found outside vendor-headers/, so the bindings are
/// the same on every machine whatever Xen headers it has installed.
fn check_headers_are_vendored(included: &[String], vendor_include: &Path, shim_dir: &Path) {
    let shim = shim_dir.canonicalize().unwrap_or_else(|err| panic!("{}: {err}", shim_dir.display()));
    let vendor = vendor_include.canonicalize().unwrap_or_else(|err| panic!("{}: {err}", vendor_include.display()));
    let mut from_vendor = 0;
    for file in included {
        let path = Path::new(file);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if canonical.starts_with(&vendor) {
            from_vendor += 1;
            continue;
        }
        if canonical.starts_with(&shim) {
            continue;
        }
        let looks_like_xen = name.starts_with("libxl")
            || name.starts_with("_libxl")
            || name.starts_with("xen")
            || name.starts_with("xs_")
            || file.contains("/xen/");
        if looks_like_xen {
            panic!("{file} was included from outside vendor-headers/; vendor it with vendor-headers/refresh.sh");
        }
    }
    if from_vendor == 0 {
        panic!("no header was read from {}", vendor.display());
    }
}

#[derive(Debug)]
struct IncludeRecorder(Rc<RefCell<Vec<String>>>);

impl bindgen::callbacks::ParseCallbacks for IncludeRecorder {
    fn include_file(&self, filename: &str) {
        self.0.borrow_mut().push(filename.to_string());
    }
}
