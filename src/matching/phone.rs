//! Mobile numbers as matching compares them: E.164 (`+8613800138000`) or nothing.
//!
//! A number is used only when it normalizes *confidently*; anything doubtful gives `None` and
//! is simply not used for matching (an unmatched user is a mild outcome, a wrong link is not).
//!
//! - Full-width digits and signs are folded first (NFKC): `１３８…` is `138…`.
//! - Separators are ignored: spaces, `-` and the other Unicode dashes, `.`, `(`, `)`. Any other
//!   character (letters, `ext`, `#`, `/`, a second number) makes the whole value unusable.
//! - An international prefix is `+` or `00`. After it comes a country code and the number; the
//!   `(0)` of `+44 (0)20 …` is dropped, as that notation means "dial 0 only from inside".
//! - China (+86): only mobiles (`1[3-9]` and 9 more digits) are used, never landlines, which
//!   are shared by whole offices. Written without a country code, an 11-digit mobile is taken
//!   as Chinese (docs/protocol.md, `host_users.put`), and so are `86…` and `0086…` before one. A trunk `0` in front
//!   of a mobile (`0138…`, `+86 0138…`) is dropped: no Chinese number starts `01[3-9]` with
//!   that length, so it cannot mean anything else.
//! - Other countries: the digits after the country code are kept as they are (7 to 15 digits in
//!   all, as E.164 allows). Without a country code a foreign number is not used: `(415)
//!   555-0100` could be in any country of the +1 plan, and a landline like `010-62550000`
//!   is not a mobile.

use unicode_normalization::UnicodeNormalization;

/// E.164 allows at most 15 digits; the shortest numbers in use have 7.
const E164_DIGITS: std::ops::RangeInclusive<usize> = 7..=15;

/// The E.164 form of a mobile number, or `None` when the value is not confidently one.
pub fn normalize(raw: &str) -> Option<String> {
    // ASCII is already NFKC, and nearly every number is ASCII.
    let folded: String = if raw.is_ascii() {
        raw.chars().filter(|c| !c.is_whitespace()).collect()
    } else {
        raw.nfkc().filter(|c| !c.is_whitespace()).collect()
    };
    let marked_international = folded.starts_with('+') || folded.starts_with("(+");
    let folded = if marked_international || folded.starts_with("00") {
        folded.replacen("(0)", "", 1)
    } else {
        folded
    };

    let mut digits = String::with_capacity(folded.len());
    let mut plus = false;
    for c in folded.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if digits.is_empty() && !plus => plus = true,
            '-' | '.' | '(' | ')' | '\u{2010}'..='\u{2015}' | '\u{2212}' => {}
            _ => return None,
        }
    }

    let international = if plus {
        Some(digits.as_str())
    } else {
        digits.strip_prefix("00")
    };
    match international {
        Some(number) => match number.strip_prefix("86") {
            Some(national) => chinese_mobile(national),
            None if E164_DIGITS.contains(&number.len()) && !number.starts_with('0') => {
                Some(format!("+{number}"))
            }
            None => None,
        },
        None => match digits.len() {
            11 | 12 => chinese_mobile(&digits),
            13 => digits.strip_prefix("86").and_then(chinese_mobile),
            _ => None,
        },
    }
}

/// `+86` and the mobile when `national` is one, with at most one trunk `0` in front.
fn chinese_mobile(national: &str) -> Option<String> {
    let mobile = national.strip_prefix('0').unwrap_or(national);
    let bytes = mobile.as_bytes();
    let is_mobile = bytes.len() == 11
        && bytes[0] == b'1'
        && (b'3'..=b'9').contains(&bytes[1])
        && bytes.iter().all(u8::is_ascii_digit);
    is_mobile.then(|| format!("+86{mobile}"))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalizes_chinese_mobiles_in_every_usual_spelling() {
        let cases = [
            ("13800138000", "bare 11 digits"),
            ("138 0013 8000", "spaces"),
            ("138-0013-8000", "dashes"),
            ("138.0013.8000", "dots"),
            ("(138) 0013 8000", "parentheses"),
            ("+8613800138000", "E.164 already"),
            ("+86 138-0013-8000", "+86 with separators"),
            ("(+86) 138 0013 8000", "+86 in parentheses"),
            ("+86(138)00138000", "parentheses after the code"),
            ("0086 13800138000", "0086 prefix"),
            ("008613800138000", "0086 prefix, no space"),
            ("86 13800138000", "86 prefix"),
            ("8613800138000", "bare 86 and the mobile: 13 digits"),
            ("+86 0138 0013 8000", "+86 with a trunk zero"),
            ("013800138000", "trunk zero, no country code"),
            ("１３８００１３８０００", "full-width digits"),
            (
                "＋８６ １３８－００１３－８０００",
                "full-width plus, dashes and space",
            ),
            ("（＋８６）１３８００１３８０００", "full-width parentheses"),
            ("138\u{3000}0013\u{3000}8000", "ideographic spaces"),
            ("138–0013–8000", "en dashes"),
            ("  13800138000\t", "surrounding whitespace"),
        ];
        for (raw, case) in cases {
            assert_eq!(
                normalize(raw).as_deref(),
                Some("+8613800138000"),
                "{case}: {raw:?}"
            );
        }
    }

    #[test]
    fn keeps_other_country_codes_as_e164() {
        let cases = [
            ("+1 (415) 555-0100", "+14155550100"),
            ("001 415 555 0100", "+14155550100"),
            ("+852 6123 4567", "+85261234567"),
            ("+44 (0)20 7946 0958", "+442079460958"),
            ("+44 20 7946 0958", "+442079460958"),
            ("+39 06 6982 1234", "+390669821234"),
            ("+886 912 345 678", "+886912345678"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize(raw).as_deref(), Some(expected), "{raw:?}");
        }
    }

    #[test]
    fn refuses_what_is_not_confidently_a_mobile() {
        let cases = [
            ("", "empty"),
            ("   ", "blank"),
            ("010-62550000", "Beijing landline without a country code"),
            ("0755-12345678", "Shenzhen landline"),
            ("+86 10 6255 0000", "landline with +86"),
            ("+86 755 1234 5678", "landline with +86, 11 digits"),
            ("(415) 555-0100", "foreign number without a country code"),
            ("1380013800", "10 digits"),
            ("138001380001", "12 digits without a trunk zero"),
            ("12345678901", "11 digits, not a mobile prefix"),
            ("11111111111", "placeholder"),
            ("+86 1380013800", "+86 and 10 digits"),
            ("+86 00138 0013 8000", "two trunk zeros"),
            ("13800138000 ext 12", "extension"),
            ("13800138000#12", "extension with #"),
            ("13800138000/13900139000", "two numbers"),
            ("1380013800O", "letter O for zero"),
            ("138-0013-8000 转 8", "Chinese extension"),
            ("+", "just a plus"),
            ("+123", "too short"),
            ("+1234567890123456", "16 digits"),
            ("+0 123 456 789", "country code 0"),
            ("138+0013+8000", "plus in the middle"),
            ("++8613800138000", "two pluses"),
            ("86-10-62550000", "landline with 86"),
        ];
        for (raw, case) in cases {
            assert_eq!(normalize(raw), None, "{case}: {raw:?}");
        }
    }
}
