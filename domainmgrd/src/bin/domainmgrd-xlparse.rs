//! domainmgrd-xlparse: the libxl side of domainmgrd's tools, in a process of its own.
//!
//! - `domainmgrd-xlparse [--host-cpus=JSON]` parses one xl.cfg file for domainmgrd and
//!   domainctl, so that libxlutil aborting or exhausting memory on a hostile file ends this
//!   process and not the daemon. It limits its own memory and CPU time first, then reads its
//!   stdin (a name for the file in errors, a NUL byte, the file's bytes) and writes the result
//!   as JSON on stdout.
//! - `domainmgrd-xlparse --dry-run FILE XL_CONF` is `domainctl create --dry-run`: it prints the
//!   libxl JSON of FILE (an xl.cfg, parsed as above in a child of its own, or an EVE
//!   DomainConfig) with XL_CONF's settings, so that `domainctl` itself links no Xen library.
//!
//! The daemon and domainctl run it; people need not.

#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

use domainmgrd::configfile::DRY_RUN_ARG;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    match args.as_slice() {
        [mode, file, xl_conf] if *mode == DRY_RUN_ARG => {
            match domainmgrd::supervisor::dry_run_json(Path::new(file), Path::new(xl_conf)) {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("domainctl: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => domainmgrd::configfile::helper_main(),
    }
}
