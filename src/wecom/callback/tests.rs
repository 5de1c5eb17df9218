//! The three steps together, on a callback the simulator seals as WeCom would.

use orgsync_simulator::{envelope_xml, CallbackEncryptor, ContactEvent, Payload};

use super::*;

const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP: &str = "wx5823bf96d3bd56c7";

#[test]
fn a_sealed_delete_user_reads_back_through_envelope_crypto_and_event() {
    let encryptor = CallbackEncryptor::new(TOKEN, KEY, CORP).unwrap();
    let plaintext = ContactEvent::DeleteUser("lisi").xml(CORP, 1_700_000_000, Payload::IdsOnly);
    let sealed = encryptor.seal(plaintext.as_bytes(), "1700000000", "42");
    let body = envelope_xml(CORP, &sealed.encrypt, "");

    let envelope = parse_envelope(body.as_bytes()).unwrap();
    let signed = Signed {
        msg_signature: &sealed.msg_signature,
        timestamp: &sealed.timestamp,
        nonce: &sealed.nonce,
    };
    let crypto = CallbackCrypto::new(TOKEN, KEY, CORP).unwrap();
    let event = parse_event(&crypto.open(signed, &envelope.encrypt).unwrap()).unwrap();
    assert_eq!(
        event.kind,
        EventKind::ContactChange(ContactChange::DeleteUser {
            userid: "lisi".into()
        })
    );
}
