//! An xl.cfg file as the daemon reads one (an autostart file, or `domainctl create`): no
//! input may panic or abort (libxlutil's asserts included), hang or eat memory, and a file
//! that is accepted must survive [`DomainSpec::to_xl_config`]: the text it writes reads back
//! to the same spec, or it refuses to write one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenctl::{DomainSpec, XlConfigFile};

/// The daemon's xl.cfg parse. When domainmgrd parses in a child process, this becomes its
/// entry point (the function the child runs), so the target follows the daemon's real path.
fn parse(source: &str, bytes: &[u8]) -> Result<XlConfigFile, String> {
    DomainSpec::read_xl_config_bytes(source, bytes).map_err(|e| e.to_string())
}

fuzz_target!(|data: &[u8]| {
    let Ok(file) = parse("fuzz.cfg", data) else { return };
    let Ok(text) = file.spec.to_xl_config() else { return };
    match parse("written.cfg", text.as_bytes()) {
        Ok(again) => assert_eq!(again.spec, file.spec, "written back as:\n{text}"),
        Err(e) => panic!("the spec's own xl.cfg does not read back: {e}\n{text}"),
    }
});
