//! Encrypts and signs callback messages the way WeCom does (the WXBizMsgCrypt scheme), so tests
//! can send orgsync callbacks it must accept.
//!
//! `random(16) ‖ msg_len (u32, big-endian) ‖ msg ‖ receive_id`, PKCS#7-padded to a multiple of 32
//! bytes, AES-256-CBC with the IV taken from the key, base64; the signature is the hex SHA-1 of
//! the token, timestamp, nonce and ciphertext sorted and joined. Written here, not borrowed from
//! orgsync, so the two implementations check each other.

use std::sync::atomic::{AtomicU64, Ordering};

use aes::cipher::{Array, BlockModeEncrypt, KeyIvInit};
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use sha1::{Digest, Sha1};

use crate::rng::{Rng, ALNUM};

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

/// EncodingAESKeys are non-canonical base64: their last character carries trailing bits.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

const PAD_BLOCK: usize = 32;

/// The EncodingAESKey is not 43 base64 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an EncodingAESKey is 43 characters of base64")]
pub struct CallbackKeyError;

/// One callback message as WeCom sends it: the query's signature, timestamp and nonce, and the
/// ciphertext for the envelope's `Encrypt` (or a GET's `echostr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedCallback {
    pub msg_signature: String,
    pub timestamp: String,
    pub nonce: String,
    pub encrypt: String,
}

/// The token, key and receive id (corp id) of one callback URL, as the WeCom side holds them.
pub struct CallbackEncryptor {
    token: String,
    key: [u8; 32],
    receive_id: String,
    /// Seeds the random prefix of each message: different per message, the same sequence in
    /// every run.
    sealed: AtomicU64,
}

impl CallbackEncryptor {
    pub fn new(
        token: &str,
        encoding_aes_key: &str,
        receive_id: &str,
    ) -> Result<CallbackEncryptor, CallbackKeyError> {
        if encoding_aes_key.len() != 43 {
            return Err(CallbackKeyError);
        }
        let key = KEY_ENGINE
            .decode(format!("{encoding_aes_key}="))
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or(CallbackKeyError)?;
        Ok(CallbackEncryptor {
            token: token.to_owned(),
            key,
            receive_id: receive_id.to_owned(),
            sealed: AtomicU64::new(0),
        })
    }

    /// Encrypts `msg` and signs it with `timestamp` and `nonce`.
    pub fn seal(&self, msg: &[u8], timestamp: &str, nonce: &str) -> SealedCallback {
        let encrypt = self.encrypt(msg);
        SealedCallback {
            msg_signature: self.sign(timestamp, nonce, &encrypt),
            timestamp: timestamp.to_owned(),
            nonce: nonce.to_owned(),
            encrypt,
        }
    }

    /// Encrypts `msg` behind 16 letters and digits, as the official encoder picks them.
    pub fn encrypt(&self, msg: &[u8]) -> String {
        let mut rng = Rng::new(self.sealed.fetch_add(1, Ordering::Relaxed));
        let random = std::array::from_fn(|_| *rng.pick(ALNUM));
        self.encrypt_with_random(random, msg)
    }

    /// Encrypts `msg` behind the given 16 bytes (WeCom treats them as opaque; real traffic
    /// carries arbitrary bytes there).
    pub fn encrypt_with_random(&self, random: [u8; 16], msg: &[u8]) -> String {
        // Callback messages are a few kilobytes; the length field is WeCom's u32.
        let len = msg.len() as u32;
        let mut buf = Vec::with_capacity(msg.len() + self.receive_id.len() + 20 + PAD_BLOCK);
        buf.extend_from_slice(&random);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(msg);
        buf.extend_from_slice(self.receive_id.as_bytes());
        let pad = PAD_BLOCK - buf.len() % PAD_BLOCK;
        buf.resize(buf.len() + pad, pad as u8);
        let (blocks, _) = Array::slice_as_chunks_mut(&mut buf);
        let iv: [u8; 16] = std::array::from_fn(|i| self.key[i]);
        Aes256CbcEnc::new(&self.key.into(), &iv.into()).encrypt_blocks(blocks);
        STANDARD.encode(&buf)
    }

    /// The `msg_signature` of a ciphertext.
    pub fn sign(&self, timestamp: &str, nonce: &str, encrypted: &str) -> String {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypted];
        parts.sort_unstable();
        let digest = Sha1::digest(parts.concat());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // §6.5 of the WeCom API notes. Vector A: the official PHP sample.
    const A_TOKEN: &str = "QDG6eK";
    const A_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    const A_CORP: &str = "wx5823bf96d3bd56c7";

    fn a() -> CallbackEncryptor {
        CallbackEncryptor::new(A_TOKEN, A_KEY, A_CORP).unwrap()
    }

    #[test]
    fn the_key_of_vector_a_decodes_despite_its_trailing_bits() {
        let hex: String = a().key.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "8d69989bbaabe67328014c194631ad0719b3dca035b64023df292447aab60760"
        );
    }

    /// A published vector: the ciphertext of `plaintext` behind a fixed random prefix, and its
    /// signature for `timestamp` and `nonce`.
    struct Vector {
        random: [u8; 16],
        plaintext: &'static str,
        timestamp: &'static str,
        nonce: &'static str,
        encrypt: &'static str,
        signature: &'static str,
    }

    impl Vector {
        fn reproduce(&self, encryptor: &CallbackEncryptor) {
            let encrypt = encryptor.encrypt_with_random(self.random, self.plaintext.as_bytes());
            assert_eq!(encrypt, self.encrypt);
            assert_eq!(
                encryptor.sign(self.timestamp, self.nonce, &encrypt),
                self.signature
            );
        }
    }

    #[test]
    fn vector_a1_echostr_is_reproduced() {
        Vector {
            random: *b"c41b64491c2468d0",
            plaintext: "1616140317555161061",
            timestamp: "1409659589",
            nonce: "263014780",
            encrypt: "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
            signature: "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
        }
        .reproduce(&a());
    }

    #[test]
    fn vector_a2_message_is_reproduced() {
        Vector {
            random: *b"0960688932c47ef1",
            plaintext: "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>",
            timestamp: "1409659813",
            nonce: "1372623149",
            encrypt: "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==",
            signature: "477715d11cdb4164915debcba66cb864d751f3e6",
        }
        .reproduce(&a());
    }

    #[test]
    fn vector_c3_deterministic_encryption_is_reproduced() {
        // wechatpy's test; the padding is 1 byte short of a whole block.
        let c = CallbackEncryptor::new(
            "123456",
            "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
            "wx49f0ab532d5d035a",
        )
        .unwrap();
        Vector {
            random: *b"1234567890123456",
            plaintext: "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>",
            timestamp: "1411525903",
            nonce: "461056294",
            encrypt: "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3",
            signature: "407518b7649e86ef23978113f92d27afa9296533",
        }
        .reproduce(&c);
    }

    #[test]
    fn vector_d_binary_random_prefix_is_reproduced() {
        let d = CallbackEncryptor::new(
            "kz7Yx62CH8SaLN",
            "cD0d7jx4tYvVtzqrmh3Dm3QFCXe6f8SlHoMtMh3qQEP",
            "ww6a112864f8022910",
        )
        .unwrap();
        Vector {
            random: [
                0x21, 0xe3, 0x30, 0x70, 0xc5, 0x6d, 0x1c, 0xa4, 0xe4, 0xfa, 0x84, 0xac, 0xe7,
                0x13, 0x34, 0xf6,
            ],
            plaintext: "<xml><ToUserName><![CDATA[ww6a112864f8022910]]></ToUserName><FromUserName><![CDATA[foobar]]></FromUserName><CreateTime>1583995625</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[x123]]></Content><MsgId>2018405441</MsgId><AgentID>1000002</AgentID></xml>",
            timestamp: "1583995625",
            nonce: "1584392382",
            encrypt: "EUCt7xMcNiyASzZj0Hjc5yDjFQrCum6AfQ3ntHiUzjGQ51xieKmbvtrZ40/EcB2W/W8yH0n4Lqx48gJl/T9HD/R309I0P/r5pIZucK3lyEn48FYMr4YdE0QdL2jIJ3xkcXUr6uzefzCxG6lMvwpAJaOyVCzN7sRRw47njfxy5EIqU6R9ZBhlTzfdnhhOhK/nTwzrZX3SoGlXFA9OBeZ6ru1NWpXFk76x9DUMe0lcxPPiUqK8ctnQcYXSGUHVqC6DfG7E7mab0OmruNN8cBZY5d3dYOBA4OgaH55Q0AJmUpdT8vNiXpXx+6TxT3TIjySXpDrHVyrsb772aYywgg/Nu4kUmGkALwFZlzhjNegR7wDwb9lr4ERXsSSS8JZ8lbBmaQ3F2Tq584xoPj5rIhXAF734ynm4no1g+SdHiNqR328=",
            signature: "f265ae551b1932727204c3d707628d01376a6940",
        }
        .reproduce(&d);
    }

    #[test]
    fn vector_e_change_contact_is_reproduced() {
        Vector {
            random: *b"0123456789abcdef",
            plaintext: "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType>update_user</ChangeType><UserID><![CDATA[zhangsan]]></UserID><NewUserID><![CDATA[zhangsan2]]></NewUserID><Department><![CDATA[1,2]]></Department><MainDepartment>1</MainDepartment></xml>",
            timestamp: "1700000000",
            nonce: "1234567890",
            encrypt: "sKqRbbiSUnDhFHOvPjtUMYdqMO6GllkxSGHm+RQAY4DPiRYQcLTWylF5SrFmX/489dn+IA2OpdboVzGe6xum/GH+n1FY3i9LecDMl12jag8VdCZp8lmkGJZl+gGT4XKVF+lzkAhYsTaxvI8lF/npCjasI5RRwqb9lY55J+d+2oj2DRpwkHvipZBHmnHKieL4P7MSR3xIfPE3c9NaMsVyo/QIyU4P0xRiGSaqq/YHc4afTzdOKQjxvzN4g00W23yL7sBdeMdPJMsn5/SWk1jLe98stvSo3/f2KtTfwf3JVG+p690+Q1OWvHL9btu8iBK1g9iNXUHC+JXCSY3LId4+ol/Qxc11nge5uYdsTRtgMZqK4JzUuwVsqTe/R0C1WBCfHRstGrpgsdBtqFatovd2EoyeODgiGFYqrB468wNXjxySpDonSuZ5KmG+5KFeMmgE2DfQfeeD92kMJRN2fsU7sPWpD34pkakrQacmOOEoybu2JZXzYM0ZfA8P8tSN3FgLGlFLmUYXDVlleJ1SGPjBscDaSQ/nsyQCiC25AcZ7JM/izW7+E1hTzx4vw6vzHFnkBkenig0jaE9Qz/X4stm5FeWYfu1E1maInGi7YiFb3hc4M6KKTUOf8tocXeBSKABX",
            signature: "22eb179b930f844e24e8d0c4cbb97714c9e5f316",
        }
        .reproduce(&a());
    }

    #[test]
    fn each_message_gets_its_own_random_prefix() {
        let a = a();
        let first = a.seal(b"hello", "1", "2");
        let second = a.seal(b"hello", "1", "2");
        assert_ne!(first.encrypt, second.encrypt);
        assert_eq!(first.msg_signature, a.sign("1", "2", &first.encrypt));
        assert_eq!((first.timestamp.as_str(), first.nonce.as_str()), ("1", "2"));
    }

    #[test]
    fn a_key_of_the_wrong_length_or_alphabet_is_refused() {
        assert!(CallbackEncryptor::new(A_TOKEN, &A_KEY[1..], A_CORP).is_err());
        let bad = format!("{}!", &A_KEY[..42]);
        assert!(CallbackEncryptor::new(A_TOKEN, &bad, A_CORP).is_err());
    }
}
