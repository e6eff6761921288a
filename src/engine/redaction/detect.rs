//! The built-in detectors of identifiers inside text, and the rewrite that replaces what they
//! find. Pure byte scanning, no SQL: every identifier is ASCII, so the scan works on the bytes
//! of any server encoding (all are ASCII supersets) and cuts only at ASCII positions.
//!
//! Each detector trades recall for precision where the two conflict: a value it redacts is
//! almost surely the identifier it names (checksums, issuer ranges, strict layouts), and the
//! README lists the shapes it does not catch.

use std::ops::Range;
use std::str::FromStr;

/// A detector named in `retention.redact(detectors => …)`; mirrors the CHECK on
/// `retention.redaction_rules.detectors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    Card,
    Email,
    Phone,
    Iban,
    Ssn,
    Custom,
}

impl Detector {
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Card => "card",
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::Iban => "iban",
            Detector::Ssn => "ssn",
            Detector::Custom => "custom",
        }
    }

    /// What this detector finds anchored at `anchor` (see [`anchors`]), added to `found`.
    fn find_at(self, text: &[u8], anchor: usize, found: &mut Vec<(Range<usize>, Detector)>) {
        let b = text[anchor];
        let range = match self {
            Detector::Card if b.is_ascii_digit() => return cards_in_run(text, anchor, found),
            Detector::Email if b == b'@' => email_at(text, anchor),
            Detector::Phone if b != b'@' => phone_from(text, anchor),
            Detector::Iban if b.is_ascii_digit() && anchor >= 2 => iban_at(text, anchor - 2),
            Detector::Ssn if b.is_ascii_digit() => ssn_at(text, anchor),
            _ => None,
        };
        if let Some(range) = range {
            found.push((range, self));
        }
    }
}

impl FromStr for Detector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "card" => Detector::Card,
            "email" => Detector::Email,
            "phone" => Detector::Phone,
            "iban" => Detector::Iban,
            "ssn" => Detector::Ssn,
            "custom" => Detector::Custom,
            _ => return Err(format!("unknown detector \"{s}\"")),
        })
    }
}

/// Replacements made, per detector.
pub type Counts = Vec<(Detector, i64)>;

/// `text` with every identifier the detectors find replaced by `replacement` (each `%s` in it
/// standing for the detector's name), and how many each replaced; None when nothing was found.
/// Where two detectors' findings overlap, the earlier one wins, then the longer.
pub fn redact(text: &[u8], detectors: &[Detector], replacement: &str) -> Option<(Vec<u8>, Counts)> {
    let mut found = Vec::new();
    for anchor in anchors(text) {
        for detector in detectors {
            detector.find_at(text, anchor, &mut found);
        }
    }
    if found.is_empty() {
        return None;
    }
    found.sort_by_key(|(r, d)| (r.start, std::cmp::Reverse(r.end), *d));
    let mut out = Vec::with_capacity(text.len());
    let mut counts: Counts = Vec::new();
    let mut at = 0;
    for (range, detector) in found {
        if range.start < at {
            continue;
        }
        out.extend_from_slice(&text[at..range.start]);
        out.extend_from_slice(replacement.replace("%s", detector.as_str()).as_bytes());
        match counts.iter_mut().find(|(d, _)| *d == detector) {
            Some((_, n)) => *n += 1,
            None => counts.push((detector, 1)),
        }
        at = range.end;
    }
    out.extend_from_slice(&text[at..]);
    Some((out, counts))
}

/// Where an identifier can be: each `@`, `+` and `(`, and the first digit of each run of digits
/// (the only places the detectors look). Most bytes of text are none of these: they are
/// checked eight at a time, with [`between`] over a 64-bit word.
fn anchors(text: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    let mut previous_digit = 0u64;
    let mut words = text.chunks_exact(8);
    let mut scan = |at: usize, x: u64, found: &mut Vec<usize>| {
        let digits = between(x, b'0' - 1, b'9' + 1);
        // A digit starts a run unless the byte before it (here or in the last word) is one.
        let starts = digits & !((digits << 8) | previous_digit);
        previous_digit = digits >> 56;
        let mut mask = starts
            | between(x, b'@' - 1, b'@' + 1)
            | between(x, b'+' - 1, b'+' + 1)
            | between(x, b'(' - 1, b'(' + 1);
        while mask != 0 {
            found.push(at + mask.trailing_zeros() as usize / 8);
            mask &= mask - 1;
        }
    };
    for (c, word) in words.by_ref().enumerate() {
        scan(
            c * 8,
            u64::from_le_bytes(word.try_into().unwrap_or_default()),
            &mut found,
        );
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        scan(
            text.len() - rest.len(),
            u64::from_le_bytes(word),
            &mut found,
        );
    }
    found
}

/// The high bit of each byte of `x` that lies strictly between `low` and `high` (ASCII bytes
/// only; bytes of 128 and more never match), with no carry between bytes: the "hasbetween"
/// bit trick.
fn between(x: u64, low: u8, high: u8) -> u64 {
    const ONES: u64 = u64::MAX / 255;
    let seven = x & (ONES * 127);
    (ONES * (127 + u64::from(high)) - seven)
        & !x
        & (seven + ONES * (127 - u64::from(low)))
        & (ONES * 128)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether a number starting at `start` stands alone on its left: no word character, and no
/// separator that continues a number (`12 555-…`).
fn left_isolated(text: &[u8], start: usize) -> bool {
    match start.checked_sub(1).map(|k| text[k]) {
        None => true,
        Some(b) if is_word(b) => false,
        Some(b) if is_separator(b) => !(start >= 2 && text[start - 2].is_ascii_digit()),
        Some(_) => true,
    }
}

/// [`left_isolated`] on the right of a number ending at `end`.
fn right_isolated(text: &[u8], end: usize) -> bool {
    match text.get(end) {
        None => true,
        Some(&b) if is_word(b) => false,
        Some(&b) if is_separator(b) => !text.get(end + 1).is_some_and(|n| n.is_ascii_digit()),
        Some(_) => true,
    }
}

/// How many digits (up to 20) follow `start` in a run where single separators, `+` and
/// parentheses may come between them: a bound the detectors check before any other work.
fn digits_ahead(text: &[u8], start: usize) -> usize {
    let mut digits = 0;
    let mut gap = 0;
    for &b in &text[start..] {
        if b.is_ascii_digit() {
            digits += 1;
            gap = 0;
            if digits == 20 {
                break;
            }
        } else if matches!(b, b' ' | b'-' | b'.' | b'(' | b')' | b'+') && gap < 2 {
            gap += 1;
        } else {
            break;
        }
    }
    digits
}

fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.')
}

/// The value of the first `n` digits.
fn prefix(digits: &[u8], n: usize) -> u32 {
    digits[..n.min(digits.len())]
        .iter()
        .fold(0, |v, d| v * 10 + u32::from(*d))
}

/// Groups of digits separated by single spaces or hyphens (one kind per run), starting at a
/// digit: each group's byte range.
fn digit_groups(text: &[u8], start: usize) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let mut separator = None;
    let mut at = start;
    loop {
        let begin = at;
        while at < text.len() && text[at].is_ascii_digit() {
            at += 1;
        }
        groups.push(begin..at);
        let Some(&b) = text.get(at) else { break };
        let continues = matches!(b, b' ' | b'-')
            && separator.is_none_or(|s| s == b)
            && text.get(at + 1).is_some_and(|n| n.is_ascii_digit());
        if !continues {
            break;
        }
        separator = Some(b);
        at += 1;
    }
    groups
}

fn digits_of(text: &[u8], range: Range<usize>) -> Vec<u8> {
    text[range]
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
        .collect()
}

/// Payment card numbers in the run of digits starting at `start`: 13–19 digits, whole groups
/// of the run (digits separated by single spaces or hyphens), Luhn-valid, in a known issuer
/// range.
fn cards_in_run(text: &[u8], start: usize, found: &mut Vec<(Range<usize>, Detector)>) {
    // A group after a single separator belongs to the run that starts before it.
    let inner =
        start >= 2 && matches!(text[start - 1], b' ' | b'-') && text[start - 2].is_ascii_digit();
    if inner || (start > 0 && is_word(text[start - 1])) || digits_ahead(text, start) < 13 {
        return;
    }
    let groups = digit_groups(text, start);
    let mut first = 0;
    while first < groups.len() {
        match card_in(text, &groups[first..]) {
            Some(end) => {
                found.push((groups[first].start..end, Detector::Card));
                first = groups.iter().position(|g| g.end == end).unwrap_or(first) + 1;
            }
            None => first += 1,
        }
    }
}

/// The end of the longest card number made of the first groups of `groups`.
fn card_in(text: &[u8], groups: &[Range<usize>]) -> Option<usize> {
    if groups[0].end < text.len() && is_word(text[groups[0].end]) && groups.len() == 1 {
        return None;
    }
    let start = groups[0].start;
    let mut best = None;
    for group in groups {
        let digits = digits_of(text, start..group.end);
        if digits.len() > 19 {
            break;
        }
        let free_end = text.get(group.end).is_none_or(|b| !is_word(*b));
        if free_end && (13..=19).contains(&digits.len()) && luhn(&digits) && known_issuer(&digits) {
            best = Some(group.end);
        }
    }
    best
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, d)| {
            let d = u32::from(*d);
            if k % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Issuer ranges (IIN) and lengths of the card schemes in use: Visa, Mastercard, American
/// Express, Discover, JCB, Diners Club, UnionPay, Maestro, Mir.
fn known_issuer(digits: &[u8]) -> bool {
    let n = digits.len();
    let (p1, p2, p3, p4, p6) = (
        prefix(digits, 1),
        prefix(digits, 2),
        prefix(digits, 3),
        prefix(digits, 4),
        prefix(digits, 6),
    );
    let visa = p1 == 4 && matches!(n, 13 | 16 | 19);
    let mastercard = n == 16 && ((51..=55).contains(&p2) || (2221..=2720).contains(&p4));
    let amex = n == 15 && matches!(p2, 34 | 37);
    let long = (16..=19).contains(&n);
    let discover = long
        && (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622126..=622925).contains(&p6));
    let jcb = long && (3528..=3589).contains(&p4);
    let diners =
        (14..=19).contains(&n) && ((300..=305).contains(&p3) || matches!(p2, 36 | 38 | 39));
    let unionpay = long && p2 == 62;
    let maestro = matches!(p2, 50 | 56 | 57 | 58) || matches!(p4, 6304 | 6759 | 6761 | 6762 | 6763);
    let mir = long && (2200..=2204).contains(&p4);
    visa || mastercard || amex || discover || jcb || diners || unionpay || maestro || mir
}

/// The e-mail address around the `@` at `at`: a local part of letters, digits and `._%+-`,
/// and a domain of at least two labels whose last is 2+ letters.
fn email_at(text: &[u8], at: usize) -> Option<Range<usize>> {
    let local = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
    let mut start = at;
    while start > 0 && local(text[start - 1]) {
        start -= 1;
    }
    while start < at && text[start] == b'.' {
        start += 1;
    }
    if start == at || text[at - 1] == b'.' {
        return None;
    }
    Some(start..domain_end(text, at + 1)?)
}

/// The end of a domain name starting at `start`: labels of letters, digits and inner hyphens,
/// at least two, the last all letters (2+).
fn domain_end(text: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    let mut labels = 0;
    let mut end = None;
    loop {
        let begin = at;
        while at < text.len() && (text[at].is_ascii_alphanumeric() || text[at] == b'-') {
            at += 1;
        }
        let label = &text[begin..at];
        if label.is_empty() || label[0] == b'-' || label[label.len() - 1] == b'-' {
            return end;
        }
        labels += 1;
        if labels >= 2 && label.len() >= 2 && label.iter().all(|b| b.is_ascii_alphabetic()) {
            end = Some(at);
        }
        if text.get(at) != Some(&b'.')
            || !text.get(at + 1).is_some_and(|b| b.is_ascii_alphanumeric())
        {
            return end;
        }
        at += 1;
    }
}

/// The phone number starting at `i`: international (`+` or `00`, then 8–15 digits in groups),
/// North American (`(555) 123-4567`, `555-123-4567`, `555.123.4567`, optionally after `1` or
/// `+1`) or national with a trunk `0` written in groups (`020 7946 0958`, `06 12 34 56 78`). A
/// run of digits without separators is a phone number only after `+`.
fn phone_from(text: &[u8], i: usize) -> Option<Range<usize>> {
    // Fewest digits of each shape: 8 after `+`, 9 with a trunk 0 (10 after `00`), else 10.
    let fewest = match text[i] {
        b'+' => 8,
        b'0' => 9,
        _ => 10,
    };
    if (i > 0 && (is_word(text[i - 1]) || text[i - 1] == b'+')) || digits_ahead(text, i) < fewest {
        return None;
    }
    let end = phone_at(text, i)?;
    // After `+` or `(` the start is plain; elsewhere digits just before the number would make
    // it part of a longer one.
    let marked = matches!(text[i], b'+' | b'(');
    ((marked || left_isolated(text, i)) && right_isolated(text, end)).then_some(i..end)
}

/// The end of a phone number starting at `start`, if one does.
fn phone_at(text: &[u8], start: usize) -> Option<usize> {
    let (end, groups) = phone_run(text, start)?;
    let digits: usize = groups.iter().sum();
    let lead = &text[start..];
    let international = lead.starts_with(b"+") || lead.starts_with(b"00");
    if international {
        let country_digits = if lead[0] == b'+' { digits } else { digits - 2 };
        let grouped = groups.len() > 1 || lead[0] == b'+';
        return ((8..=15).contains(&country_digits) && grouped).then_some(end);
    }
    if north_american(&groups, &text[start..end]) {
        return Some(end);
    }
    let trunk =
        lead.first() == Some(&b'0') && lead.get(1).is_some_and(|b| (b'1'..=b'9').contains(b));
    let national = trunk
        && groups.len() >= 2
        && (9..=12).contains(&digits)
        && groups.iter().all(|g| (2..=8).contains(g));
    national.then_some(end)
}

/// Digits in groups, each separated by one space, hyphen or dot, or wrapped in parentheses
/// (`(555) 123`, `+44 (0)20`); the end of the last digit and the groups' lengths.
fn phone_run(text: &[u8], start: usize) -> Option<(usize, Vec<usize>)> {
    let mut at = start + usize::from(text[start] == b'+');
    let mut groups = Vec::new();
    let mut end = None;
    loop {
        let open = text.get(at) == Some(&b'(');
        at += usize::from(open);
        let begin = at;
        while at < text.len() && text[at].is_ascii_digit() {
            at += 1;
        }
        if at == begin || (open && text.get(at) != Some(&b')')) {
            break;
        }
        groups.push(at - begin);
        end = Some(at);
        at += usize::from(open);
        if groups.iter().sum::<usize>() > 17 {
            return None;
        }
        match text.get(at) {
            Some(&b) if is_separator(b) => at += 1,
            Some(b'(') if open => {}
            _ if open && text.get(at).is_some_and(|b| b.is_ascii_digit()) => {}
            _ => break,
        }
    }
    end.map(|e| (e, groups))
}

/// `(NXX) NXX-XXXX` and its variants, optionally after a `1` country code; N is 2–9.
fn north_american(groups: &[usize], number: &[u8]) -> bool {
    let shape = match groups {
        [1, 3, 3, 4] if number[0] == b'1' || number.starts_with(b"+1") => &groups[1..],
        [3, 3, 4] => groups,
        _ => return false,
    };
    let digits = digits_of(number, 0..number.len());
    let skip = groups.len() - shape.len();
    digits[skip] >= 2 && digits[skip + 3] >= 2
}

/// The IBAN starting at `start`: a known country code, two check digits and the country's
/// length of letters and digits, in one block or groups of four separated by single spaces,
/// valid under ISO 13616's mod-97 check.
fn iban_at(text: &[u8], start: usize) -> Option<Range<usize>> {
    let country = &text[start..start + 2];
    if (start > 0 && is_word(text[start - 1])) || !country.iter().all(u8::is_ascii_uppercase) {
        return None;
    }
    let length = iban_length(country)?;
    let mut chars = Vec::with_capacity(length);
    let mut at = start;
    while chars.len() < length {
        let b = *text.get(at)?;
        if b == b' '
            && chars.len() % 4 == 0
            && !chars.is_empty()
            && at > start
            && text[at - 1] != b' '
        {
            at += 1;
            continue;
        }
        if !(b.is_ascii_uppercase() || b.is_ascii_digit()) {
            return None;
        }
        chars.push(b);
        at += 1;
    }
    let well_formed = chars[2].is_ascii_digit() && chars[3].is_ascii_digit();
    let free_end = text.get(at).is_none_or(|b| !is_word(*b));
    (well_formed && free_end && mod97(&chars) == 1).then_some(start..at)
}

/// ISO 13616 check: the country code and check digits moved to the end, letters as 10–35.
fn mod97(chars: &[u8]) -> u32 {
    chars[4..].iter().chain(&chars[..4]).fold(0u32, |rest, &b| {
        if b.is_ascii_digit() {
            (rest * 10 + u32::from(b - b'0')) % 97
        } else {
            (rest * 100 + u32::from(b - b'A') + 10) % 97
        }
    })
}

/// IBAN lengths of the SWIFT registry's countries.
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// The IBAN length of `country`, None for a country without IBANs.
fn iban_length(country: &[u8]) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(code, _)| code.as_slice() == country)
        .map(|(_, n)| *n)
}

/// The US social security number starting at `start`, written `AAA-GG-SSSS` (or with
/// spaces): area 001–899 but not 666, group and serial not zero. Nine digits in one block are
/// not taken for one.
fn ssn_at(text: &[u8], start: usize) -> Option<Range<usize>> {
    let candidate = text.get(start..start + 11)?;
    let separator = candidate[3];
    let shape_ok = matches!(separator, b'-' | b' ')
        && candidate[6] == separator
        && candidate
            .iter()
            .enumerate()
            .all(|(k, b)| k == 3 || k == 6 || b.is_ascii_digit());
    // Not glued to a word, nor continuing a number written with the same separator.
    let continues = |b: Option<u8>, next: Option<u8>| {
        b.is_some_and(is_word) || (b == Some(separator) && next.is_some_and(|n| n.is_ascii_digit()))
    };
    let before = start.checked_sub(1).map(|k| text[k]);
    let before2 = start.checked_sub(2).map(|k| text[k]);
    let (after, after2) = (text.get(start + 11).copied(), text.get(start + 12).copied());
    if !shape_ok || continues(before, before2) || continues(after, after2) {
        return None;
    }
    let d = digits_of(text, start..start + 11);
    let (area, group, serial) = (prefix(&d, 3), prefix(&d[3..], 2), prefix(&d[5..], 4));
    (area != 0 && area != 666 && area < 900 && group != 0 && serial != 0)
        .then_some(start..start + 11)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `detector` alone finds in `text`.
    fn run(detector: Detector, text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for anchor in anchors(text.as_bytes()) {
            detector.find_at(text.as_bytes(), anchor, &mut found);
        }
        found
            .into_iter()
            .map(|(r, _)| text[r].to_string())
            .collect()
    }

    #[test]
    fn cards_need_luhn_an_issuer_and_a_whole_number() {
        for card in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "3782 822463 10005",
            "6011111111111117",
            "3530111333300000",
            "36227206271667",
            "6200000000000005",
            "4222222222222",
        ] {
            assert_eq!(
                run(Detector::Card, &format!("pay {card}.")),
                vec![card],
                "{card}"
            );
        }
        for not_card in [
            "4111111111111112",        // fails Luhn
            "1234567812345670",        // Luhn-valid, no issuer
            "41111111111111111111",    // 20 digits
            "order 4111111111111111x", // glued to a word
            "4111 1111-1111 1111",     // mixed separators
            "2024-01-15",              // a date
            "0000000000000000",        // Luhn-valid zeros
        ] {
            assert!(run(Detector::Card, not_card).is_empty(), "{not_card}");
        }
        assert_eq!(
            run(Detector::Card, "call 555 4111 1111 1111 1111"),
            vec!["4111 1111 1111 1111"]
        );
    }

    #[test]
    fn emails_need_a_domain_with_a_letter_tld() {
        assert_eq!(
            run(
                Detector::Email,
                "mail <jane.doe+x@mail.example.co.uk>, or j_d@ex-ample.org."
            ),
            vec!["jane.doe+x@mail.example.co.uk", "j_d@ex-ample.org"]
        );
        for not_email in [
            "@handle",
            "a@b",
            "user@localhost",
            "x@1.2.3.4",
            "name@.com",
            "@@",
        ] {
            assert!(run(Detector::Email, not_email).is_empty(), "{not_email}");
        }
    }

    #[test]
    fn phones_are_grouped_or_international_and_not_dates_or_order_numbers() {
        for phone in [
            "+14155552671",
            "+1 415 555 2671",
            "+44 20 7946 0958",
            "+44 (0)20 7946 0958",
            "0044 20 7946 0958",
            "(415) 555-2671",
            "415-555-2671",
            "415.555.2671",
            "1 415 555 2671",
            "020 7946 0958",
            "06 12 34 56 78",
            "030 1234567",
        ] {
            assert_eq!(
                run(Detector::Phone, &format!("call {phone} now")),
                vec![phone],
                "{phone}"
            );
        }
        for phone in ["on 2024-01-15 +44 20 7946 0958", "(415) 555-2671, 2024"] {
            assert_eq!(run(Detector::Phone, phone).len(), 1, "{phone}");
        }
        assert_eq!(
            run(Detector::Phone, "call +4915112345678"),
            vec!["+4915112345678"]
        );
        for not_phone in [
            "2024-01-15",
            "15.01.2024",
            "01-02-2024",
            "12:30:45",
            "order 4155552671",
            "ORD-2024-000123",
            "invoice 123-456-7890",
            "192.168.100.200",
            "v1.2.3",
            "+123",
            "0612345678",
            "12 415-555-2671",
        ] {
            assert!(run(Detector::Phone, not_phone).is_empty(), "{not_phone}");
        }
    }

    #[test]
    fn ibans_pass_mod_97_with_their_country_length() {
        for iban in [
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432",
            "GB82 WEST 1234 5698 7654 32",
            "FR1420041010050500013M02606",
            "NO9386011117947",
        ] {
            assert_eq!(
                run(Detector::Iban, &format!("IBAN: {iban}.")),
                vec![iban],
                "{iban}"
            );
        }
        for not_iban in [
            "DE89370400440532013001",
            "DE8937040044053201300",
            "XX89370400440532013000",
            "de89370400440532013000",
        ] {
            assert!(run(Detector::Iban, not_iban).is_empty(), "{not_iban}");
        }
    }

    #[test]
    fn ssns_are_hyphenated_and_in_issued_ranges() {
        assert_eq!(run(Detector::Ssn, "SSN 123-45-6789."), vec!["123-45-6789"]);
        assert_eq!(run(Detector::Ssn, "SSN 123 45 6789"), vec!["123 45 6789"]);
        assert_eq!(
            run(Detector::Ssn, "acct 00 123-45-6789"),
            vec!["123-45-6789"]
        );
        for not_ssn in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123456789",
            "1-123-45-6789",
        ] {
            assert!(run(Detector::Ssn, not_ssn).is_empty(), "{not_ssn}");
        }
    }

    #[test]
    fn anchors_are_found_eight_bytes_at_a_time() {
        let text = "ab 12 x@y (3) +4 é9 1234567890123456789 end";
        let expected: Vec<usize> = (0..text.len())
            .filter(|&i| {
                let b = text.as_bytes()[i];
                matches!(b, b'@' | b'+' | b'(')
                    || (b.is_ascii_digit() && (i == 0 || !text.as_bytes()[i - 1].is_ascii_digit()))
            })
            .collect();
        assert_eq!(anchors(text.as_bytes()), expected);
    }

    #[test]
    fn redact_replaces_and_counts_and_keeps_the_rest() {
        let detectors = [Detector::Card, Detector::Email, Detector::Phone];
        let (out, counts) = redact(
            "Card 4111 1111 1111 1111, mail a@b.io, a@b.io, call +44 20 7946 0958 — ok".as_bytes(),
            &detectors,
            "[redacted:%s]",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Card [redacted:card], mail [redacted:email], [redacted:email], call [redacted:phone] — ok"
        );
        assert_eq!(
            counts,
            vec![
                (Detector::Card, 1),
                (Detector::Email, 2),
                (Detector::Phone, 1)
            ]
        );
        assert!(redact(b"nothing to see, order 12", &detectors, "x").is_none());
    }
}
