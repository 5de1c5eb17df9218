//! Against the test vectors of §6.5 of the WeCom API notes, and the simulator's encryptor.

use aes::cipher::{Array, BlockModeEncrypt, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use orgsync_simulator::CallbackEncryptor;

use super::*;

struct Vector {
    token: &'static str,
    key: &'static str,
    corp: &'static str,
}

/// The official PHP sample.
const A: Vector = Vector {
    token: "QDG6eK",
    key: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    corp: "wx5823bf96d3bd56c7",
};
/// The official Python sample.
const B: Vector = Vector {
    token: "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
    key: "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
    corp: "ww1436e0e65a779aee",
};
/// wechatpy's tests.
const C: Vector = Vector {
    token: "123456",
    key: "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
    corp: "wx49f0ab532d5d035a",
};
/// go-workwx's test: a random prefix of arbitrary bytes.
const D: Vector = Vector {
    token: "kz7Yx62CH8SaLN",
    key: "cD0d7jx4tYvVtzqrmh3Dm3QFCXe6f8SlHoMtMh3qQEP",
    corp: "ww6a112864f8022910",
};

impl Vector {
    fn crypto(&self) -> CallbackCrypto {
        CallbackCrypto::new(self.token, self.key, self.corp).unwrap()
    }

    fn encryptor(&self) -> CallbackEncryptor {
        CallbackEncryptor::new(self.token, self.key, self.corp).unwrap()
    }

    /// Opens `encrypted` as WeCom sends it, with its `[msg_signature, timestamp, nonce]`.
    fn open(&self, signature: [&str; 3], encrypted: &str) -> Result<Vec<u8>, CryptoError> {
        let [msg_signature, timestamp, nonce] = signature;
        self.crypto()
            .open(signed(msg_signature, timestamp, nonce), encrypted)
    }

    /// [`Vector::open`] for a message that must open, as text.
    fn open_text(&self, signature: [&str; 3], encrypted: &str) -> String {
        String::from_utf8(self.open(signature, encrypted).unwrap()).unwrap()
    }
}

fn signed<'a>(msg_signature: &'a str, timestamp: &'a str, nonce: &'a str) -> Signed<'a> {
    Signed {
        msg_signature,
        timestamp,
        nonce,
    }
}

/// Encrypts `plain` as it stands (its length a multiple of 16): for bodies WeCom would never
/// send.
fn encrypt_raw(vector: &Vector, mut plain: Vec<u8>) -> String {
    let crypto = vector.crypto();
    let (blocks, rest) = Array::slice_as_chunks_mut(&mut plain);
    assert!(rest.is_empty());
    cbc::Encryptor::<aes::Aes256>::new(&crypto.key.into(), &crypto.iv.into())
        .encrypt_blocks(blocks);
    STANDARD.encode(plain)
}

/// `random ‖ len ‖ msg ‖ receive_id`, without padding.
fn layout(len: u32, msg: &[u8], receive_id: &str) -> Vec<u8> {
    let mut plain = b"0123456789abcdef".to_vec();
    plain.extend_from_slice(&len.to_be_bytes());
    plain.extend_from_slice(msg);
    plain.extend_from_slice(receive_id.as_bytes());
    plain
}

fn pad(mut plain: Vec<u8>) -> Vec<u8> {
    let pad = 32 - plain.len() % 32;
    plain.resize(plain.len() + pad, pad as u8);
    plain
}

#[test]
fn the_key_and_iv_of_each_vector_decode_despite_trailing_bits() {
    let a = A.crypto();
    assert_eq!(
        hex(&a.key),
        "8d69989bbaabe67328014c194631ad0719b3dca035b64023df292447aab60760"
    );
    assert_eq!(hex(&a.iv), "8d69989bbaabe67328014c194631ad07");
    assert_eq!(
        hex(&B.crypto().key),
        "eaa91d32babaf274ca76ece72583b5037ed6da8120a64314be4b6d453a2a854b"
    );
    assert_eq!(
        hex(&C.crypto().key),
        "916c4f115d94103cb15a998f74a0b71787603c398ebdf297d471a71140d2d5a4"
    );
}

#[test]
fn vector_a1_url_verification_returns_the_echo() {
    let echostr =
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
    let signature = [
        "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
        "1409659589",
        "263014780",
    ];
    assert_eq!(A.open(signature, echostr).unwrap(), b"1616140317555161061");
}

#[test]
fn vector_a2_message_decrypts_to_the_sample_plaintext() {
    let encrypt = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";
    let signature = [
        "477715d11cdb4164915debcba66cb864d751f3e6",
        "1409659813",
        "1372623149",
    ];
    assert_eq!(
        A.open_text(signature, encrypt),
        "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>"
    );
}

#[test]
fn vector_b1_url_verification_returns_the_echo() {
    let echostr =
        "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==";
    let signature = [
        "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
        "1476416373",
        "47744683",
    ];
    assert_eq!(B.open(signature, echostr).unwrap(), b"1288432023552776189");
}

#[test]
fn vector_b2_length_counts_bytes_of_multibyte_text() {
    let encrypt = "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+";
    let signature = [
        "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
        "1476422779",
        "1597212914",
    ];
    let plain = B.open(signature, encrypt).unwrap();
    assert_eq!(plain.len(), 228);
    assert_eq!(
        String::from_utf8(plain).unwrap(),
        "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName><CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
    );
}

const C1_ECHOSTR: &str =
    "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==";

#[test]
fn vector_c1_url_verification_returns_the_echo() {
    let signature = [
        "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
        "1411443780",
        "437374425",
    ];
    assert_eq!(
        C.open(signature, C1_ECHOSTR).unwrap(),
        b"5927782489442352469"
    );
}

#[test]
fn vector_c1_with_another_nonce_fails_the_signature() {
    let signature = [
        "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
        "1411443780",
        "437374424",
    ];
    assert_eq!(
        C.open(signature, C1_ECHOSTR),
        Err(CryptoError::BadSignature)
    );
}

#[test]
fn vector_c2_one_byte_of_padding() {
    let encrypt = "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=";
    let signature = [
        "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
        "1411525903",
        "461056294",
    ];
    assert_eq!(
        C.open_text(signature, encrypt),
        "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<FromUserName><![CDATA[messense]]></FromUserName>\n<CreateTime>1411525903</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<MsgId>4363689963896700987</MsgId>\n<AgentID>1</AgentID>\n</xml>"
    );
}

#[test]
fn vector_c3_the_simulators_deterministic_encryption_decrypts() {
    let encrypt = "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3";
    let signature = [
        "407518b7649e86ef23978113f92d27afa9296533",
        "1411525903",
        "461056294",
    ];
    assert_eq!(
        C.open_text(signature, encrypt),
        "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>"
    );
}

#[test]
fn vector_d_binary_random_prefix_is_opaque() {
    let encrypt = "EUCt7xMcNiyASzZj0Hjc5yDjFQrCum6AfQ3ntHiUzjGQ51xieKmbvtrZ40/EcB2W/W8yH0n4Lqx48gJl/T9HD/R309I0P/r5pIZucK3lyEn48FYMr4YdE0QdL2jIJ3xkcXUr6uzefzCxG6lMvwpAJaOyVCzN7sRRw47njfxy5EIqU6R9ZBhlTzfdnhhOhK/nTwzrZX3SoGlXFA9OBeZ6ru1NWpXFk76x9DUMe0lcxPPiUqK8ctnQcYXSGUHVqC6DfG7E7mab0OmruNN8cBZY5d3dYOBA4OgaH55Q0AJmUpdT8vNiXpXx+6TxT3TIjySXpDrHVyrsb772aYywgg/Nu4kUmGkALwFZlzhjNegR7wDwb9lr4ERXsSSS8JZ8lbBmaQ3F2Tq584xoPj5rIhXAF734ynm4no1g+SdHiNqR328=";
    let signature = [
        "f265ae551b1932727204c3d707628d01376a6940",
        "1583995625",
        "1584392382",
    ];
    assert_eq!(
        D.open_text(signature, encrypt),
        "<xml><ToUserName><![CDATA[ww6a112864f8022910]]></ToUserName><FromUserName><![CDATA[foobar]]></FromUserName><CreateTime>1583995625</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[x123]]></Content><MsgId>2018405441</MsgId><AgentID>1000002</AgentID></xml>"
    );
}

#[test]
fn vector_e_change_contact_decrypts() {
    let encrypt = "sKqRbbiSUnDhFHOvPjtUMYdqMO6GllkxSGHm+RQAY4DPiRYQcLTWylF5SrFmX/489dn+IA2OpdboVzGe6xum/GH+n1FY3i9LecDMl12jag8VdCZp8lmkGJZl+gGT4XKVF+lzkAhYsTaxvI8lF/npCjasI5RRwqb9lY55J+d+2oj2DRpwkHvipZBHmnHKieL4P7MSR3xIfPE3c9NaMsVyo/QIyU4P0xRiGSaqq/YHc4afTzdOKQjxvzN4g00W23yL7sBdeMdPJMsn5/SWk1jLe98stvSo3/f2KtTfwf3JVG+p690+Q1OWvHL9btu8iBK1g9iNXUHC+JXCSY3LId4+ol/Qxc11nge5uYdsTRtgMZqK4JzUuwVsqTe/R0C1WBCfHRstGrpgsdBtqFatovd2EoyeODgiGFYqrB468wNXjxySpDonSuZ5KmG+5KFeMmgE2DfQfeeD92kMJRN2fsU7sPWpD34pkakrQacmOOEoybu2JZXzYM0ZfA8P8tSN3FgLGlFLmUYXDVlleJ1SGPjBscDaSQ/nsyQCiC25AcZ7JM/izW7+E1hTzx4vw6vzHFnkBkenig0jaE9Qz/X4stm5FeWYfu1E1maInGi7YiFb3hc4M6KKTUOf8tocXeBSKABX";
    let signature = [
        "22eb179b930f844e24e8d0c4cbb97714c9e5f316",
        "1700000000",
        "1234567890",
    ];
    let plain = A.open(signature, encrypt).unwrap();
    assert_eq!(plain.len(), 413);
    assert!(plain.ends_with(b"<MainDepartment>1</MainDepartment></xml>"));
}

#[test]
fn every_padding_length_round_trips_through_the_simulator() {
    let (crypto, encryptor) = (A.crypto(), A.encryptor());
    // 20 bytes of header and 18 of corp id around the message: any 32 lengths in a row cover
    // every pad from 1 to 32.
    for len in 0..=64 {
        let msg = vec![b'x'; len];
        let sealed = encryptor.seal(&msg, "1700000000", "nonce");
        let signed = signed(&sealed.msg_signature, &sealed.timestamp, &sealed.nonce);
        assert_eq!(
            crypto.open(signed, &sealed.encrypt).unwrap(),
            msg,
            "len {len}"
        );
    }
}

#[test]
fn a_wrong_or_malformed_signature_is_refused() {
    let sealed = A.encryptor().seal(b"1", "1", "2");
    let crypto = A.crypto();
    let upper = sealed.msg_signature.to_uppercase();
    let short = &sealed.msg_signature[..39];
    for bad in [
        "",
        short,
        &upper,
        "0000000000000000000000000000000000000000",
    ] {
        assert_eq!(
            crypto.verify_signature(signed(bad, "1", "2"), &sealed.encrypt),
            Err(CryptoError::BadSignature),
            "{bad:?}"
        );
    }
    // Every signed value counts.
    let sig = &sealed.msg_signature;
    assert!(crypto
        .verify_signature(signed(sig, "1", "2"), &sealed.encrypt)
        .is_ok());
    assert!(crypto
        .verify_signature(signed(sig, "2", "2"), &sealed.encrypt)
        .is_err());
    assert!(crypto
        .verify_signature(signed(sig, "1", "3"), &sealed.encrypt)
        .is_err());
    assert!(crypto
        .verify_signature(signed(sig, "1", "2"), C1_ECHOSTR)
        .is_err());
    let other_token = CallbackCrypto::new("other", A.key, A.corp).unwrap();
    assert!(other_token
        .verify_signature(signed(sig, "1", "2"), &sealed.encrypt)
        .is_err());
}

#[test]
fn a_message_for_another_corp_is_refused() {
    let sealed = A.encryptor().seal(b"<xml/>", "1", "2");
    let other = CallbackCrypto::new(A.token, A.key, "wwsomeoneelse").unwrap();
    assert_eq!(
        other.decrypt(&sealed.encrypt),
        Err(CryptoError::WrongReceiveId)
    );
    // The receive id is compared whole, not as a prefix.
    let prefix = CallbackCrypto::new(A.token, A.key, "wx5823bf96d3bd56").unwrap();
    assert_eq!(
        prefix.decrypt(&sealed.encrypt),
        Err(CryptoError::WrongReceiveId)
    );
}

#[test]
fn a_length_beyond_the_data_is_truncated() {
    let crypto = A.crypto();
    for len in [19, 1000, u32::MAX] {
        let body = encrypt_raw(&A, pad(layout(len, b"short", "")));
        assert_eq!(
            crypto.decrypt(&body),
            Err(CryptoError::Truncated),
            "len {len}"
        );
    }
    // Too short for the 20-byte header.
    let body = encrypt_raw(&A, pad(b"0123456789abcdef".to_vec()));
    assert_eq!(crypto.decrypt(&body), Err(CryptoError::Truncated));
    // All padding.
    let body = encrypt_raw(&A, vec![32; 32]);
    assert_eq!(crypto.decrypt(&body), Err(CryptoError::Truncated));
}

#[test]
fn invalid_padding_is_refused() {
    let crypto = A.crypto();
    let plain = layout(5, b"hello", A.corp); // 43 bytes: 21 bytes of padding make 64
    let with = |pad: &[u8]| {
        let mut plain = plain.clone();
        plain.extend_from_slice(pad);
        encrypt_raw(&A, plain)
    };
    assert!(crypto.decrypt(&with(&[21; 21])).is_ok());
    let mut mixed = [21; 21];
    mixed[0] = 20;
    for pad in [&[0u8; 21][..], &[33; 21], &mixed] {
        assert_eq!(crypto.decrypt(&with(pad)), Err(CryptoError::BadPadding));
    }
    // A pad longer than the data.
    assert_eq!(
        crypto.decrypt(&encrypt_raw(&A, vec![32; 16])),
        Err(CryptoError::BadPadding)
    );
}

#[test]
fn bad_base64_and_bad_lengths_are_refused() {
    let crypto = A.crypto();
    for bad in [
        "not base64!",
        "P9nAzCzy DtyT",
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKl=",
    ] {
        assert_eq!(crypto.decrypt(bad), Err(CryptoError::BadBase64), "{bad}");
    }
    assert_eq!(crypto.decrypt(""), Err(CryptoError::BadLength));
    let fifteen = STANDARD.encode([0u8; 15]);
    assert_eq!(crypto.decrypt(&fifteen), Err(CryptoError::BadLength));
    let seventeen = STANDARD.encode([0u8; 17]);
    assert_eq!(crypto.decrypt(&seventeen), Err(CryptoError::BadLength));
    let huge = "A".repeat(MAX_CALLBACK_BYTES + 4);
    assert_eq!(crypto.decrypt(&huge), Err(CryptoError::TooLarge));
}

#[test]
fn a_wrong_key_is_refused_without_panicking() {
    let sealed = A.encryptor().seal(b"<xml/>", "1", "2");
    let wrong = CallbackCrypto::new(A.token, B.key, A.corp).unwrap();
    assert!(wrong.decrypt(&sealed.encrypt).is_err());
}

#[test]
fn keys_of_the_wrong_length_or_alphabet_are_refused() {
    let new = |token: &str, key: &str| CallbackCrypto::new(token, key, A.corp).unwrap_err();
    assert_eq!(new(A.token, &A.key[1..]), KeyError::KeyLength { chars: 42 });
    assert_eq!(
        new(A.token, &format!("{}=", A.key)),
        KeyError::KeyLength { chars: 44 }
    );
    assert_eq!(
        new(A.token, &format!("{}!", &A.key[1..])),
        KeyError::KeyAlphabet
    );
    assert_eq!(
        new(A.token, &format!("{}=", &A.key[1..])),
        KeyError::KeyAlphabet
    );
    // 43 bytes, 42 characters.
    assert_eq!(
        new(A.token, &format!("{}é", &A.key[2..])),
        KeyError::KeyLength { chars: 42 }
    );
    assert_eq!(new("", A.key), KeyError::EmptyToken);
}

#[test]
fn errors_and_debug_output_carry_no_secrets() {
    let crypto = A.crypto();
    assert_eq!(
        format!("{crypto:?}"),
        r#"CallbackCrypto { receive_id: "wx5823bf96d3bd56c7", .. }"#
    );
    let key_error = CallbackCrypto::new(A.token, &A.key[1..], A.corp).unwrap_err();
    assert!(!key_error.to_string().contains(&A.key[1..10]));
    let other = CallbackCrypto::new(A.token, A.key, "wwsomeoneelse").unwrap();
    let sealed = A.encryptor().seal(b"secret plaintext", "1", "2");
    let error = other.decrypt(&sealed.encrypt).unwrap_err().to_string();
    assert!(
        !error.contains("secret") && !error.contains(A.corp),
        "{error}"
    );
}
