//! An xl.cfg file as the daemon reads one (an autostart file, or `domainctl create`): no
//! input may panic or abort (libxlutil's asserts included), hang or eat memory, and a file
//! that is accepted must survive [`DomainSpec::to_xl_config`]: the text it writes reads back
//! to the same spec, or it refuses to write one. It must also survive the conversion into
//! libxl's config and libxl's JSON ([`DomainSpec::to_libxl_json`], what a dry run prints and,
//! but for the JSON, what a create hands libxl): an error is fine, a crash is not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenctl::XlConfigFile;

/// The daemon's xl.cfg parse: the function its parser child (`domainmgrd-xlparse`) runs.
fn parse(source: &str, bytes: &[u8]) -> Result<XlConfigFile, String> {
    domainmgrd::configfile::parse_xl_config(source, bytes)
}

fuzz_target!(|data: &[u8]| {
    let Ok(file) = parse("fuzz.cfg", data) else { return };
    let _ = file.spec.to_libxl_json();
    let Ok(text) = file.spec.to_xl_config() else { return };
    match parse("written.cfg", text.as_bytes()) {
        Ok(again) => assert_eq!(again.spec, file.spec, "written back as:\n{text}"),
        Err(e) => panic!("the spec's own xl.cfg does not read back: {e}\n{text}"),
    }
});
