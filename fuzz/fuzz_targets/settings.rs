//! The settings file (`--settings`: EVE's ConfigItemValueMap or a flat object) as
//! `Settings::apply_json` reads it, and a `--config=key:value` flag. Applying a file that was
//! accepted a second time changes nothing.
#![no_main]

use domainmgrd::settings::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The daemon reads the file with read_to_string: not UTF-8 is an error before parsing.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Settings::default().apply_flag(text);
    let mut settings = Settings::default();
    if settings.apply_json("fuzz.json", text).is_ok() {
        let mut again = settings.clone();
        again.apply_json("fuzz.json", text).expect("an accepted settings file is accepted again");
        assert_eq!(again, settings);
    }
});
