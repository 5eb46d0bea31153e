//! A request line on the control socket, as the server reads it (the first line, UTF-8) and
//! answers it: a `Request` must serialize and parse back unchanged, and so must the response
//! the server writes for it (an echo of the request, or "not a request: ...").
#![no_main]

use domainmgrd::control::{Request, Response};
use libfuzzer_sys::fuzz_target;

fn round_trip(response: &Response) {
    let mut line = serde_json::to_vec(response).expect("a response serializes");
    line.push(b'\n');
    let text = std::str::from_utf8(&line).expect("JSON is UTF-8");
    let back: Response = serde_json::from_str(text).expect("a response line parses");
    assert_eq!(&back, response);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let line = text.find('\n').map_or(text, |end| &text[..=end]);
    match serde_json::from_str::<Request>(line) {
        Ok(request) => {
            let json = serde_json::to_string(&request).expect("a request serializes");
            let again: Request = serde_json::from_str(&json).expect("a serialized request parses");
            assert_eq!(again, request);
            round_trip(&Response::data(&request));
        }
        Err(e) => round_trip(&Response::error(format!("not a request: {e}"))),
    }
});
