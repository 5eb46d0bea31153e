//! A message from an EVE pubsub peer, as `evepubsub` decodes it (every message a publisher or a
//! subscriber reads off the socket): decoding never panics, and a message that decodes encodes
//! back to bytes that decode to the same message.
#![no_main]

use evepubsub::wire::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        let bytes = message.encode().expect("a decoded message encodes");
        assert!(bytes.len() < evepubsub::MAX_MESSAGE);
        assert_eq!(Message::decode(&bytes).expect("an encoded message decodes"), message);
    }
});
