//! Arbitrary bytes as a callback body and as a decrypted event: an error is fine, a panic, a
//! hang or a blow-up in memory is not.

#![no_main]

use libfuzzer_sys::fuzz_target;
use orgsync::wecom::callback::{parse_envelope, parse_event, ContactChange, EventKind};

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = parse_envelope(data) {
        assert!(!envelope.encrypt.is_empty());
    }
    if let Ok(event) = parse_event(data) {
        if let EventKind::ContactChange(
            ContactChange::CreateUser { userid, .. }
            | ContactChange::UpdateUser { userid, .. }
            | ContactChange::DeleteUser { userid },
        ) = event.kind
        {
            assert!(!userid.is_empty());
        }
    }
});
