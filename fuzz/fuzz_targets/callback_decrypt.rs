//! Callback crypto with a fixed key (vector A of the API notes), two ways:
//!
//! - the input as `msg_signature` and ciphertext (split at the first newline): nothing panics,
//!   no signature but the right one passes, and nothing is decrypted before it does;
//! - the input as the plaintext itself, encrypted here with the key, so the padding, length and
//!   receive-id checks see chosen bytes: whatever decrypts is exactly the message the layout
//!   describes.

#![no_main]

use aes::cipher::{Array, BlockModeEncrypt, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use orgsync::wecom::callback::{CallbackCrypto, CryptoError, Signed};

const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP: &str = "wx5823bf96d3bd56c7";
const A1_SIGNATURE: &str = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3";
const A1_ECHOSTR: &str =
    "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
/// The key KEY decodes to.
const KEY_BYTES: [u8; 32] = [
    0x8d, 0x69, 0x98, 0x9b, 0xba, 0xab, 0xe6, 0x73, 0x28, 0x01, 0x4c, 0x19, 0x46, 0x31, 0xad, 0x07,
    0x19, 0xb3, 0xdc, 0xa0, 0x35, 0xb6, 0x40, 0x23, 0xdf, 0x29, 0x24, 0x47, 0xaa, 0xb6, 0x07, 0x60,
];

fuzz_target!(|data: &[u8]| {
    let Ok(crypto) = CallbackCrypto::new(TOKEN, KEY, CORP) else {
        panic!("vector A's key is valid");
    };

    let text = String::from_utf8_lossy(data);
    let (signature, encrypted) = text.split_once('\n').unwrap_or(("", &text));
    let signed = Signed {
        msg_signature: signature,
        timestamp: "1409659589",
        nonce: "263014780",
    };
    match crypto.open(signed, encrypted) {
        // Vector A1, the one signed input this timestamp and nonce know.
        Ok(echo) => {
            assert_eq!((signature, encrypted), (A1_SIGNATURE, A1_ECHOSTR));
            assert_eq!(echo, b"1616140317555161061");
        }
        Err(CryptoError::BadSignature) => {
            let _ = crypto.decrypt(encrypted);
        }
        Err(other) => panic!("decrypted before the signature was checked: {other}"),
    }

    // Chosen plaintext, cut to whole AES blocks.
    let mut plain = data[..data.len() - data.len() % 16].to_vec();
    let (blocks, _) = Array::slice_as_chunks_mut(&mut plain);
    let iv: [u8; 16] = std::array::from_fn(|i| KEY_BYTES[i]);
    cbc::Encryptor::<aes::Aes256>::new(&KEY_BYTES.into(), &iv.into()).encrypt_blocks(blocks);
    if let Ok(msg) = crypto.decrypt(&STANDARD.encode(&plain)) {
        let chosen = &data[..plain.len()];
        let pad = usize::from(chosen[chosen.len() - 1]);
        let len = u32::from_be_bytes([chosen[16], chosen[17], chosen[18], chosen[19]]) as usize;
        assert_eq!(msg.len(), len);
        assert_eq!(msg, chosen[20..20 + len]);
        assert_eq!(&chosen[20 + len..chosen.len() - pad], CORP.as_bytes());
        assert!(chosen[chosen.len() - pad..]
            .iter()
            .all(|&b| usize::from(b) == pad));
    }
});
