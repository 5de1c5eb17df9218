//! WeCom contact-change callbacks: the WXBizMsgCrypt signature and decryption, and the XML of
//! the envelope and of the event inside it. Pure functions on bytes; the HTTP endpoint that
//! receives callbacks and the targeted sync they trigger live elsewhere.
//!
//! A POST is read in three steps: [`parse_envelope`] on the body, [`CallbackCrypto::open`] on its
//! `Encrypt` with the query's signature, [`parse_event`] on the plaintext. A GET (URL
//! verification) is [`CallbackCrypto::open`] on `echostr`, answered with the plaintext.

mod crypto;
mod xml;

pub use crypto::{hex, CallbackCrypto, CryptoError, KeyError, Signed, ENCODING_AES_KEY_LEN};
pub use xml::{
    parse_envelope, parse_event, ContactChange, Envelope, Event, EventKind, XmlError, MAX_DEPTH,
    MAX_FIELDS,
};

/// The most a callback body, or the ciphertext in it, may take. Real contact events are a few
/// kilobytes; the bound keeps a hostile request from costing more than a copy of it.
pub const MAX_CALLBACK_BYTES: usize = 256 * 1024;

#[cfg(test)]
mod tests;
