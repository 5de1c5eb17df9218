//! WeCom contact-change callbacks: the WXBizMsgCrypt signature and decryption. Pure functions on
//! bytes; the HTTP endpoint that receives callbacks and the targeted sync they trigger live
//! elsewhere.
//!
//! Both callbacks go through [`CallbackCrypto::open`]: a GET (URL verification) on `echostr`,
//! answered with the plaintext; a POST on the `Encrypt` of its body, which gives the event's XML.

mod crypto;

pub use crypto::{CallbackCrypto, CryptoError, KeyError, Signed, ENCODING_AES_KEY_LEN};

/// The most a callback body, or the ciphertext in it, may take. Real contact events are a few
/// kilobytes; the bound keeps a hostile request from costing more than a copy of it.
pub const MAX_CALLBACK_BYTES: usize = 256 * 1024;
