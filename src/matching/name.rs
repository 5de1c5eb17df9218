//! Names as matching compares them: Unicode NFKC, then trimmed, and nothing fuzzier.
//!
//! NFKC makes the same name typed on different keyboards compare equal: full-width Latin
//! letters, half-width katakana, CJK compatibility ideographs, composed and decomposed accents.
//! Case, inner spaces and punctuation are kept: `Zhang San`, `zhang san` and `张 三` are three
//! names. Folding them would create matches between people who merely look alike on paper,
//! and a wrong link is worse than no link.

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// The form two names are compared in, or `None` for a name that is empty once trimmed.
pub fn normalize(raw: &str) -> Option<String> {
    // Most names are already in NFKC; the quick check spares them the folding, which is most
    // of the cost of loading 100,000 members.
    let folded = match is_nfkc_quick(raw.chars()) {
        IsNormalized::Yes => std::borrow::Cow::Borrowed(raw),
        IsNormalized::No | IsNormalized::Maybe => std::borrow::Cow::Owned(raw.nfkc().collect()),
    };
    let trimmed = folded.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn folds_compatibility_forms_and_trims() {
        let cases = [
            ("王芳", "王芳", "already normal"),
            ("  王芳 ", "王芳", "ASCII spaces around"),
            ("\u{3000}王芳\u{3000}", "王芳", "ideographic spaces around"),
            ("\t王芳\n", "王芳", "tabs and newlines around"),
            ("Ｚｈａｎｇ Ｓａｎ", "Zhang San", "full-width Latin"),
            ("ﾔﾏﾀﾞ", "ヤマダ", "half-width katakana"),
            ("Jose\u{301}", "José", "decomposed accent"),
            ("\u{F90A}", "\u{91D1}", "CJK compatibility ideograph"),
            ("ﬁona", "fiona", "ligature"),
        ];
        for (raw, expected, case) in cases {
            assert_eq!(normalize(raw).as_deref(), Some(expected), "{case}: {raw:?}");
        }
    }

    #[test]
    fn keeps_case_inner_spaces_and_punctuation() {
        let cases = [
            ("Zhang San", "Zhang San"),
            ("zhang san", "zhang san"),
            ("张 三", "张 三"),
            ("O'Brien", "O'Brien"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize(raw).as_deref(), Some(expected), "{raw:?}");
        }
        assert_ne!(normalize("Zhang San"), normalize("zhang san"));
        assert_ne!(normalize("张 三"), normalize("张三"));
    }

    #[test]
    fn a_blank_name_is_no_name() {
        for raw in ["", " ", "\u{3000}", "\t\n"] {
            assert_eq!(normalize(raw), None, "{raw:?}");
        }
    }
}
