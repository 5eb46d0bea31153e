//! The header of a save image (xl's format) as restore and host-start read it, from any
//! bytes. A header that is accepted says where the stream starts, inside the data, and the
//! header alone (the bytes before the stream) reads back the same.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xenctl::SaveImageHeader;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.img");
    let Ok(header) = SaveImageHeader::parse(&mut &data[..], path) else { return };
    let end = usize::try_from(header.stream_offset).expect("the stream offset fits memory");
    assert!(end <= data.len(), "the stream starts at {end}, past the {} bytes read", data.len());
    let again = SaveImageHeader::parse(&mut &data[..end], path).expect("the header alone reads back");
    assert_eq!(again, header);
});
