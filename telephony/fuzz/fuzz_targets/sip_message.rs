//! Any bytes, as a UDP datagram and as a TCP stream, through parsing, framing and the endpoint:
//! nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    telephony::sip::fuzzing::exercise(data);
});
