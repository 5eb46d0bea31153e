//! An EVE `DomainConfig` file as the daemon loads one: JSON into [`DomainConfig`], then
//! [`translate`] into a spec. The config must survive serialize → parse unchanged, and the
//! xl.cfg the daemon writes for the domain must read back to the spec it runs.
#![no_main]

use std::path::Path;

use domainmgrd::eve::DomainConfig;
use domainmgrd::translate::translate;
use libfuzzer_sys::fuzz_target;
use xenctl::DomainSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = serde_json::from_slice::<DomainConfig>(data) else { return };
    let json = serde_json::to_vec(&config).expect("a parsed DomainConfig serializes");
    let again: DomainConfig = serde_json::from_slice(&json).expect("a serialized DomainConfig parses");
    assert_eq!(again, config);
    let Ok(translated) = translate(&config, Path::new("fuzz.json"), &domainmgrd::translate::PvBoot::eve_default())
    else {
        return;
    };
    let Ok(text) = translated.spec.to_xl_config() else { return };
    match DomainSpec::read_xl_config_text("written.cfg", &text) {
        Ok(back) => assert_eq!(back.spec, translated.spec, "written as:\n{text}"),
        Err(e) => panic!("the domain's xl.cfg does not read back: {e}\n{text}"),
    }
});
