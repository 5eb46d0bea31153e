//! What libxlutil must never be handed: xl.cfg text on which Xen 4.17's parser aborts the
//! process or needs memory out of all proportion to the file. [`check`] runs before
//! `xlu_cfg_readdata` and turns each such input into an [`Error::XlConfig`] naming the file
//! and line, so a bad file in an autostart directory is an error, never a dead daemon.
//!
//! From reading libxlutil (tools/libs/util in the Xen tree: the lexer `libxlu_cfg_l.l`, the
//! grammar `libxlu_cfg_y.y` and `libxlu_cfg.c`), the input-reachable failures are:
//! - A NUL byte inside a quoted string. `xlu__cfgl_dequote` measures the token with `strlen`,
//!   so the NUL cuts it short and `assert(len>=2 && src[0]==src[len-1])` (or the escape
//!   assertion after it) aborts. The other assertions there hold for any NUL-free token.
//! - `key += value` keeps every intermediate value: each `+=` stores a new copy of the whole
//!   string (`asprintf("%s%s")`) or a new pointer array of the whole list, and the earlier
//!   ones stay allocated until the config is destroyed, so n appends of a short value cost
//!   O(n²) memory (a 400 KiB file can ask for gigabytes). Each `+=` also walks every earlier
//!   setting (`find`), O(n²) time. We count what libxlutil would copy and compare, and refuse
//!   a file past [`APPEND_BUDGET`] bytes; no real config comes near it.
//!
//! The other assertions (`if (r) assert(ctx->err)` after `yyparse`, the ones in list building
//! and `xlu__cfg_set_store`) only check libxlutil's own bookkeeping, which holds whatever the
//! input; flex's `nodefault` scanner has a rule for every byte in both start states, so it
//! cannot jam; bison stops lists nested deeper than its 10,000-deep stack with a syntax error.
//! The fuzz target `xl_cfg` (fuzz/ at the repository root) checks that nothing else aborts.
//!
//! It reads the text with `xllex.rs`, which follows libxlutil's lexer byte for byte, so a
//! string is exactly what libxlutil dequotes.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::xllex::{Lexeme, Token, tokens};

/// The most bytes of copying and comparing that the file's `+=` assignments may cost
/// libxlutil (see the module comment): far above any real config, far below harm.
pub(crate) const APPEND_BUDGET: u64 = 64 << 20;

/// What libxlutil's `find` costs per setting it walks past, in the budget's bytes.
const FIND_COST: u64 = 32;

/// Refuses `data` (xl.cfg text called `source`) if libxlutil would abort on it or spend
/// quadratic memory or time on its `+=` assignments.
pub(crate) fn check(source: &str, data: &[u8]) -> Result<()> {
    let toks = tokens(data);
    let err = |line: u32, key: Option<&[u8]>, reason: String| Error::XlConfig {
        file: source.to_string(),
        line: Some(line),
        key: key.map(|k| String::from_utf8_lossy(k).into_owned()),
        reason,
    };
    if let Some((line, key)) = nul_in_string(&toks) {
        return Err(err(line, key, "a NUL byte inside a quoted string (xl's parser would abort on it)".into()));
    }
    // Per key: the size of its value so far and the index of its latest setting.
    let mut values: HashMap<&[u8], (u64, u64)> = HashMap::new();
    let mut settings = 0u64;
    let mut cost = 0u64;
    let mut i = 0;
    while i < toks.len() {
        let Some((key, append, size, next)) = assignment(&toks, i) else {
            // Not an assignment: libxlutil skips to the newline (or stops storing anything).
            i = toks[i..].iter().position(|t| t.token == Token::Newline).map_or(toks.len(), |n| i + n + 1);
            continue;
        };
        let (total, walked) = match values.get(key.text) {
            // `find` walks the settings list from the newest, stopping at this key's latest.
            Some(&(earlier, latest)) if append => (earlier.saturating_add(size), settings - latest),
            _ => (size, settings),
        };
        if append {
            cost = cost.saturating_add(total).saturating_add(walked.saturating_mul(FIND_COST));
            if cost > APPEND_BUDGET {
                return Err(err(
                    key.line,
                    Some(key.text),
                    format!(
                        "too many `+=`: xl's parser would copy more than {} MiB for them (it keeps every \
                         intermediate value); assign the value once",
                        APPEND_BUDGET >> 20
                    ),
                ));
            }
        }
        values.insert(key.text, (total, settings));
        settings += 1;
        i = next;
    }
    Ok(())
}

/// The line of the first quoted string holding a NUL byte, and the key it is assigned to.
fn nul_in_string<'a>(toks: &[Lexeme<'a>]) -> Option<(u32, Option<&'a [u8]>)> {
    let (mut key, mut depth, mut at_start) = (None, 0u32, true);
    for t in toks {
        match t.token {
            Token::Str { nul: true } => return Some((t.line, key)),
            Token::Newline | Token::Semicolon if depth == 0 => {
                (key, at_start) = (None, true);
                continue;
            }
            Token::Ident if at_start => key = Some(t.text),
            Token::Open => depth += 1,
            Token::Close => depth = depth.saturating_sub(1),
            _ => {}
        }
        at_start = false;
    }
    None
}

/// The assignment starting at token `i`, if one does: its key, whether it appends, the bytes
/// libxlutil copies for its value (a string's length, or a pointer per list item), and the
/// index after it.
fn assignment<'a>(toks: &[Lexeme<'a>], i: usize) -> Option<(Lexeme<'a>, bool, u64, usize)> {
    let key = *toks.get(i).filter(|t| t.token == Token::Ident)?;
    let append = match toks.get(i + 1)?.token {
        Token::Assign => false,
        Token::Append => true,
        _ => return None,
    };
    let mut j = i + 2;
    let size = match toks.get(j)?.token {
        Token::Str { .. } | Token::Number => {
            j += 1;
            toks[j - 1].text.len() as u64
        }
        Token::Open => {
            // Count the top-level items up to the matching `]`.
            let (mut depth, mut items, mut item_open) = (0u32, 0u64, false);
            loop {
                let t = toks.get(j)?;
                j += 1;
                match t.token {
                    Token::Open => {
                        if depth == 1 && !item_open {
                            items += 1;
                            item_open = true;
                        }
                        depth += 1;
                    }
                    Token::Close => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Token::Str { .. } | Token::Number if depth == 1 && !item_open => {
                        items += 1;
                        item_open = true;
                    }
                    Token::Comma if depth == 1 => item_open = false,
                    Token::Str { .. } | Token::Number | Token::Comma | Token::Newline => {}
                    _ => return None,
                }
            }
            items * 8
        }
        _ => return None,
    };
    match toks.get(j).map(|t| t.token) {
        None => Some((key, append, size, j)),
        Some(Token::Newline | Token::Semicolon) => Some((key, append, size, j + 1)),
        Some(_) => None,
    }
}

/// Refuses a PCI_SPEC_STRING on which libxlutil's `parse_bdf` reads an uninitialised offset:
/// for `BB:DD` or `DDDD:BB:DD` not followed by `.`, its `sscanf("%x:%x.%n")` matches the
/// numbers but never stores `%n`, and the pointer moves by stack garbage (a SIGSEGV found by
/// the xl_cfg fuzz target, with `00:04/0`). Checked for the positional address and `bdf=`.
/// Stricter than xl only for blanks inside an address, which `sscanf` would skip.
pub(crate) fn check_pci_spec(spec: &str) -> std::result::Result<(), String> {
    let addresses = std::iter::once(spec).chain(spec.split(',').filter_map(|kv| kv.strip_prefix("bdf=")));
    for address in addresses {
        let run = address.bytes().take_while(|b| b.is_ascii_hexdigit() || *b == b':').count();
        let colons = address.bytes().take(run).filter(|&b| b == b':').count();
        if (colons == 1 || colons == 2) && address.as_bytes().get(run) != Some(&b'.') {
            return Err("a PCI address needs its function after a dot ([DDDD:]BB:DD.F)".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_in_a_quoted_string_is_refused_with_its_line_and_key() {
        let e = check("g.cfg", b"name = 'g'\nkernel = \"/k\0\"\n").unwrap_err();
        assert_eq!(e.to_string(), "g.cfg:2: kernel: a NUL byte inside a quoted string (xl's parser would abort on it)");
        let e = check("g.cfg", b"disk = [ 'a',\n 'b\0' ]").unwrap_err();
        let Error::XlConfig { line, key, .. } = e else { panic!() };
        assert_eq!((line, key.as_deref()), (Some(2), Some("disk")));
        // Elsewhere a NUL is only a syntax error (or a comment) to libxlutil.
        check("g.cfg", b"# \0\nname = 'g'\0\na = f(\"\0\")\n").unwrap();
    }

    #[test]
    fn appends_are_counted_as_libxlutil_copies_them() {
        let text = "extra = \"x\"\n".to_string() + &"extra += \"0123456789abcdef\"\n".repeat(200);
        check("g.cfg", text.as_bytes()).unwrap();
        let n: u64 = 4000;
        let text = "extra += \"0123456789abcdef\"\n".repeat(n as usize);
        let e = check("g.cfg", text.as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with("g.cfg:"), "{e}");
        assert!(e.to_string().contains("extra: too many `+=`"), "{e}");
        // A list costs a pointer per item, and a fresh `=` starts the count again.
        assert_eq!(assignment(&tokens(b"d += [ 'a', ['b', 'c'], 'd' ]\n"), 0).map(|a| (a.1, a.2)), Some((true, 24)));
        let text = "disk = []\n".to_string() + &"disk += [ '' ]\n".repeat(1000);
        check("g.cfg", text.repeat(5).as_bytes()).unwrap();
    }

    #[test]
    fn pci_addresses_without_their_dot_are_refused() {
        for bad in ["00:04/0,permissive=0", "0000:00:04", "00:04", "bdf=00:04,seize=1", "00:04.0,bdf=1:2"] {
            assert!(check_pci_spec(bad).is_err(), "{bad}");
        }
        for ok in ["0000:03:00.0", "03:00.1@4,permissive=1", "03:00.*", "name=gpu", "bdf=03:00.0", "xyz", ""] {
            check_pci_spec(ok).unwrap();
        }
    }

    #[test]
    fn malformed_statements_are_skipped_to_their_newline() {
        assert!(assignment(&tokens(b"a = = 1\n"), 0).is_none());
        assert!(assignment(&tokens(b"a = [ 1 = ]\n"), 0).is_none());
        assert!(assignment(&tokens(b"a = [ 1\n"), 0).is_none());
        check("g.cfg", b"= = =\n[[[\n]]]\na += [\nb += 'x'\n").unwrap();
    }
}
