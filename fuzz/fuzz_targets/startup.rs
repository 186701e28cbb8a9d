//! Startup-phase packets: any bytes classify as a packet or an error, the
//! identity checks on the parameters never panic, and a parsed startup
//! message re-encodes to a packet that parses the same.
#![no_main]

use bytes::Bytes;
use copyguard::enforce::check_startup;
use copyguard::wire::{InitialPacket, MAX_STARTUP_PACKET_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_STARTUP_PACKET_LEN {
        return;
    }
    let Ok(packet) = InitialPacket::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    if let InitialPacket::Startup(s) = packet {
        let _ = check_startup(&s.params, s.param("replication").is_some());
        if s.params.iter().all(|(k, _)| !k.is_empty()) {
            let again = copyguard::wire::StartupMessage::encode(s.minor, &s.params);
            match InitialPacket::parse(again) {
                Ok(InitialPacket::Startup(t)) => assert_eq!(t.params, s.params),
                other => panic!("re-encoded startup message parses as {other:?}"),
            }
        }
    }
});
