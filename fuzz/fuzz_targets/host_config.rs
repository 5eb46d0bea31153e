//! The host settings file (`/etc/default/domainmgr`, xendomains' keys) as
//! `HostConfig::parse` reads it. An error names a line the file has.
#![no_main]

use domainmgrd::hostcfg::HostConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The daemon reads the file with read_to_string: not UTF-8 is an error before parsing.
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = HostConfig::parse("fuzz", text) {
        assert!((1..=text.lines().count()).contains(&e.line), "{e}: no such line");
    }
});
