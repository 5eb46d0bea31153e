//! C's number readers as xl uses them, in one place: [`strtoul`] (what xl's hand-written
//! parsers of MACs, I/O ports, IRQs, iomem and USB ids read) and [`strtol_whole`] (libxlutil's
//! xlu_cfg_get_long, for xl.conf). Each follows glibc: leading blanks, a sign, `0x` only when a
//! hex digit follows, and the overflow rules spelled out per function.

/// What C's `strtoul(text, &end, base)` reads (base 0, 10 or 16): the value, and how many
/// bytes it took (0 when there is no number, where `end` would be `text`). As glibc: leading
/// white space and a sign are read, a minus negates modulo 2^64, and a value past 2^64 - 1
/// is 2^64 - 1.
pub(crate) fn strtoul(text: &str, base: u32) -> (u64, usize) {
    let b = text.as_bytes();
    let mut i = b.iter().take_while(|c| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')).count();
    let negative = b.get(i) == Some(&b'-');
    if matches!(b.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let hex_prefix = b.get(i) == Some(&b'0')
        && matches!(b.get(i + 1), Some(b'x' | b'X'))
        && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
    let radix = match base {
        0 | 16 if hex_prefix => {
            i += 2;
            16
        }
        0 if b.get(i) == Some(&b'0') => 8,
        0 => 10,
        other => other,
    };
    let start = i;
    let mut value = Some(0u64);
    while let Some(digit) = b.get(i).and_then(|&c| char::from(c).to_digit(radix)) {
        value = value.and_then(|v| v.checked_mul(u64::from(radix))).and_then(|v| v.checked_add(u64::from(digit)));
        i += 1;
    }
    if i == start {
        return (0, 0);
    }
    match value {
        None => (u64::MAX, i),
        Some(v) if negative => (v.wrapping_neg(), i),
        Some(v) => (v, i),
    }
}

/// C's `strtol(s, &end, 0)` over the whole of `s`: leading blanks, a sign, `0x` hex, `0`
/// octal or decimal; `None` for trailing text, no digits or overflow.
pub(crate) fn strtol_whole(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    i64::try_from(if neg { -magnitude } else { magnitude }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_as_c_reads_them() {
        for (text, base, want) in [
            ("2f8", 16, (0x2f8, 3)),
            (" 0x3f8 ", 16, (0x3f8, 6)),
            ("0X1F", 16, (0x1f, 4)),
            ("0x", 16, (0, 1)),
            ("0xg", 16, (0, 1)),
            ("+9", 10, (9, 2)),
            ("-1", 10, (u64::MAX, 2)),
            ("-0", 10, (0, 2)),
            ("010", 0, (8, 3)),
            ("08", 0, (0, 1)),
            ("0x10", 0, (16, 4)),
            ("12", 0, (12, 2)),
            ("99999999999999999999999", 10, (u64::MAX, 23)),
            ("", 16, (0, 0)),
            ("x", 16, (0, 0)),
            ("-", 10, (0, 0)),
            (" ", 10, (0, 0)),
        ] {
            assert_eq!(strtoul(text, base), want, "{text:?} in base {base}");
        }
    }

    #[test]
    fn whole_longs_are_read_as_strtol_reads_them() {
        for (text, want) in [
            ("12", Some(12)),
            (" -0x10", Some(-16)),
            ("010", Some(8)),
            ("0", Some(0)),
            ("08", None),
            ("12abc", None),
            ("", None),
            ("9223372036854775808", None),
            ("-9223372036854775808", Some(i64::MIN)),
        ] {
            assert_eq!(strtol_whole(text), want, "{text:?}");
        }
    }
}
