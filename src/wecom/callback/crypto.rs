//! WeCom's callback crypto (the WXBizMsgCrypt scheme): a SHA-1 signature over the sorted token,
//! timestamp, nonce and ciphertext, and AES-256-CBC with the IV taken from the key.
//!
//! The plaintext is `random(16) ‖ msg_len (u32, big-endian) ‖ msg ‖ receive_id`, padded with
//! PKCS#7 to a multiple of **32** bytes. RustCrypto's PKCS#7 unpadder works on the 16-byte AES block
//! and refuses pads of 17..=32, so the cipher runs without padding and [`unpad`] strips it.

use std::fmt;

use aes::cipher::{Array, BlockModeDecrypt, KeyIvInit};
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::MAX_CALLBACK_BYTES;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// Real EncodingAESKeys are non-canonical base64 (the 43rd character carries non-zero trailing
/// bits), which the `STANDARD` engine refuses.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Characters in an EncodingAESKey: 32 bytes of base64 without its trailing `=`.
pub const ENCODING_AES_KEY_LEN: usize = 43;

/// WeCom pads to this block size, not AES's 16.
const PAD_BLOCK: usize = 32;
const RANDOM_LEN: usize = 16;
const HEADER_LEN: usize = RANDOM_LEN + 4;

/// Why a token or EncodingAESKey cannot be used. Never shows the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the callback token is empty")]
    EmptyToken,
    #[error(
        "the EncodingAESKey must be {ENCODING_AES_KEY_LEN} characters, this one has {chars}: copy it again from the admin console"
    )]
    KeyLength { chars: usize },
    #[error(
        "the EncodingAESKey is not base64 (WeCom's are letters and digits): copy it again from the admin console"
    )]
    KeyAlphabet,
}

/// Why a callback was refused. The messages name the check that failed and never carry the key,
/// the token or any decrypted byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("msg_signature does not match: wrong token, or the request was altered")]
    BadSignature,
    #[error("the ciphertext is longer than {MAX_CALLBACK_BYTES} bytes")]
    TooLarge,
    #[error("the ciphertext is not valid base64")]
    BadBase64,
    #[error("the ciphertext is not a whole number of AES blocks: wrong EncodingAESKey or a damaged body")]
    BadLength,
    #[error("the decrypted padding is invalid: wrong EncodingAESKey or a damaged body")]
    BadPadding,
    #[error("the decrypted message is shorter than its length field says")]
    Truncated,
    #[error("the decrypted message is addressed to another receive id (corp id)")]
    WrongReceiveId,
}

/// The query parameters WeCom signs a callback with: `msg_signature`, `timestamp`, `nonce`, exactly
/// as they arrived (after URL decoding).
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub msg_signature: &'a str,
    pub timestamp: &'a str,
    pub nonce: &'a str,
}

/// The token, the AES key and the receive id (the corp id) of one callback URL.
pub struct CallbackCrypto {
    token: String,
    key: [u8; 32],
    /// The first 16 bytes of the key.
    iv: [u8; 16],
    receive_id: String,
}

impl fmt::Debug for CallbackCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackCrypto")
            .field("receive_id", &self.receive_id)
            .finish_non_exhaustive()
    }
}

impl CallbackCrypto {
    /// `encoding_aes_key` is the 43-character key from the admin console; `receive_id` is the
    /// corp id every decrypted message must end with.
    pub fn new(
        token: &str,
        encoding_aes_key: &str,
        receive_id: &str,
    ) -> Result<CallbackCrypto, KeyError> {
        if token.is_empty() {
            return Err(KeyError::EmptyToken);
        }
        let chars = encoding_aes_key.chars().count();
        if chars != ENCODING_AES_KEY_LEN {
            return Err(KeyError::KeyLength { chars });
        }
        let padded = format!("{encoding_aes_key}=");
        let key = KEY_ENGINE
            .decode(padded)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or(KeyError::KeyAlphabet)?;
        Ok(CallbackCrypto {
            token: token.to_owned(),
            key,
            iv: std::array::from_fn(|i| key[i]),
            receive_id: receive_id.to_owned(),
        })
    }

    /// Checks `msg_signature` against the token, timestamp, nonce and `encrypted` (the `echostr`
    /// of a URL verification, or the `Encrypt` of a POST body). The comparison is constant-time.
    pub fn verify_signature(&self, signed: Signed<'_>, encrypted: &str) -> Result<(), CryptoError> {
        let expected = signature(&self.token, signed.timestamp, signed.nonce, encrypted);
        if bool::from(expected.as_bytes().ct_eq(signed.msg_signature.as_bytes())) {
            Ok(())
        } else {
            Err(CryptoError::BadSignature)
        }
    }

    /// Decrypts `encrypted` (base64) and returns the message: the XML of an event, or the
    /// `echostr` reply. Does not check the signature; see [`CallbackCrypto::open`].
    pub fn decrypt(&self, encrypted: &str) -> Result<Vec<u8>, CryptoError> {
        if encrypted.len() > MAX_CALLBACK_BYTES {
            return Err(CryptoError::TooLarge);
        }
        let mut buf = STANDARD
            .decode(encrypted)
            .map_err(|_| CryptoError::BadBase64)?;
        let (blocks, rest) = Array::slice_as_chunks_mut(&mut buf);
        if blocks.is_empty() || !rest.is_empty() {
            return Err(CryptoError::BadLength);
        }
        Aes256CbcDec::new(&self.key.into(), &self.iv.into()).decrypt_blocks(blocks);
        let (msg, receive_id) = split(unpad(&buf)?)?;
        if receive_id != self.receive_id.as_bytes() {
            return Err(CryptoError::WrongReceiveId);
        }
        Ok(msg.to_vec())
    }

    /// Verifies the signature, then decrypts: what both callbacks need. For the GET URL
    /// verification pass `echostr` and answer with the returned bytes exactly; for a POST pass the
    /// envelope's `Encrypt` and parse the returned XML.
    pub fn open(&self, signed: Signed<'_>, encrypted: &str) -> Result<Vec<u8>, CryptoError> {
        self.verify_signature(signed, encrypted)?;
        self.decrypt(encrypted)
    }
}

/// Lowercase hex SHA-1 of the four strings sorted byte-wise and joined.
fn signature(token: &str, timestamp: &str, nonce: &str, encrypted: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypted];
    parts.sort_unstable();
    let mut sha = Sha1::new();
    for part in parts {
        sha.update(part.as_bytes());
    }
    hex(&sha.finalize())
}

/// Lowercase hex, as WeCom writes signatures.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Strips PKCS#7 padding of 1..=32 bytes, every pad byte equal to the pad length.
fn unpad(buf: &[u8]) -> Result<&[u8], CryptoError> {
    let pad = buf.last().copied().map_or(0, usize::from);
    if !(1..=PAD_BLOCK).contains(&pad) || pad > buf.len() {
        return Err(CryptoError::BadPadding);
    }
    let (plain, padding) = buf.split_at(buf.len() - pad);
    if padding.iter().any(|&b| usize::from(b) != pad) {
        return Err(CryptoError::BadPadding);
    }
    Ok(plain)
}

/// Splits the unpadded plaintext after its 20-byte header into the message and the receive id.
fn split(plain: &[u8]) -> Result<(&[u8], &[u8]), CryptoError> {
    let len = plain
        .get(RANDOM_LEN..HEADER_LEN)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .ok_or(CryptoError::Truncated)?;
    let len = usize::try_from(u32::from_be_bytes(len)).map_err(|_| CryptoError::Truncated)?;
    let body = &plain[HEADER_LEN..];
    if len > body.len() {
        return Err(CryptoError::Truncated);
    }
    Ok(body.split_at(len))
}

#[cfg(test)]
mod tests;
