//! The xl.conf text as libxlutil's grammar reads it, for [`XlConf`](crate::XlConf): the
//! assignments of a file (the last one of each key winning, `+=` joined as libxlutil joins
//! them), their values as libxlutil's atoms, and C's `strtol` where xl uses it. Linear in the
//! file's size, with no recursion (see `xlconf.rs` for why it is not libxlutil).

use std::collections::HashMap;

use crate::cnum::strtol_whole;
use crate::error::{Error, Result};
use crate::xllex::{Lexeme, Token, tokens};

/// One assignment's value: libxlutil's atoms, or a list (whose items xl.conf never reads).
#[derive(Debug)]
pub(crate) enum Value {
    Atom(String),
    List,
}

#[derive(Debug)]
pub(crate) struct Setting {
    pub(crate) value: Value,
    pub(crate) line: u32,
    pub(crate) appended: bool,
}

/// The assignments of a file, the last one of each key winning (libxlutil's lookup), `+=`
/// joined as libxlutil joins them.
pub(crate) struct Settings {
    source: String,
    pub(crate) map: HashMap<String, Setting>,
}

impl Settings {
    pub(crate) fn parse(source: &str, data: &[u8]) -> Result<Settings> {
        let syntax = |line: u32, reason: String| Error::XlConfig {
            file: source.to_string(),
            line: Some(line),
            key: None,
            reason,
        };
        let toks = tokens(data);
        let mut map: HashMap<String, Setting> = HashMap::new();
        let mut i = 0;
        let text = |t: &Lexeme<'_>| String::from_utf8_lossy(t.text).into_owned();
        while i < toks.len() {
            let t = toks[i];
            match t.token {
                Token::Newline | Token::Semicolon => {
                    i += 1;
                    continue;
                }
                Token::Ident => {}
                _ => return Err(syntax(t.line, format!("syntax error at {:?}", text(&t)))),
            }
            let key = text(&t);
            let op = toks.get(i + 1).copied();
            let appended = match op.map(|o| o.token) {
                Some(Token::Assign) => false,
                Some(Token::Append) => true,
                _ => return Err(syntax(t.line, format!("{key}: expected = or += after the key"))),
            };
            i += 2;
            let Some(&v) = toks.get(i) else {
                return Err(syntax(t.line, format!("{key}: no value")));
            };
            let bad = |reason: String| Error::XlConfig {
                file: source.to_string(),
                line: Some(v.line),
                key: Some(key.clone()),
                reason,
            };
            let value = match v.token {
                Token::Str { nul: true } => return Err(bad("a NUL byte inside a string (xl would abort)".into())),
                Token::Str { nul: false } => {
                    i += 1;
                    Value::Atom(dequote(v.text).map_err(bad)?)
                }
                Token::Number => {
                    i += 1;
                    Value::Atom(text(&v))
                }
                Token::Open => {
                    i = skip_list(&toks, i).map_err(|(line, r)| syntax(line, format!("{key}: {r}")))?;
                    Value::List
                }
                _ => return Err(bad(format!("syntax error at {:?}", text(&v)))),
            };
            match toks.get(i).map(|e| e.token) {
                None | Some(Token::Newline | Token::Semicolon) => {}
                Some(_) => {
                    return Err(syntax(toks[i].line, format!("{key}: syntax error at {:?}", text(&toks[i]))));
                }
            }
            let value = match (appended, map.remove(&key)) {
                (true, Some(Setting { value: Value::Atom(mut prev), .. })) => match value {
                    Value::Atom(s) => {
                        prev.push_str(&s);
                        Value::Atom(prev)
                    }
                    Value::List => return Err(bad("can't add [list] to \"string\" or vice versa".into())),
                },
                (true, Some(Setting { value: Value::List, .. })) => match value {
                    Value::List => Value::List,
                    Value::Atom(_) => return Err(bad("can't add [list] to \"string\" or vice versa".into())),
                },
                _ => value,
            };
            map.insert(key, Setting { value, line: v.line, appended });
        }
        Ok(Settings { source: source.to_string(), map })
    }

    /// xlu_cfg_get_string: absent, or a list (a warning), is `None`.
    pub(crate) fn string(&self, key: &str, warnings: &mut Vec<String>) -> Option<(u32, String)> {
        let s = self.map.get(key)?;
        match &s.value {
            Value::Atom(v) => Some((s.line, v.clone())),
            Value::List => {
                warnings.push(format!("{}:{}: {key}: a list where one value belongs; ignored", self.source, s.line));
                None
            }
        }
    }

    /// xlu_cfg_get_long: anything but a whole number as strtol reads it is a warning and
    /// `None`.
    pub(crate) fn long(&self, key: &str, warnings: &mut Vec<String>) -> Option<i64> {
        match self.number(key) {
            Ok(n) => n,
            Err((line, reason)) => {
                warnings.push(format!("{}:{line}: {key}: {reason}; ignored", self.source));
                None
            }
        }
    }

    pub(crate) fn number(&self, key: &str) -> std::result::Result<Option<i64>, (u32, String)> {
        let Some(s) = self.map.get(key) else { return Ok(None) };
        match &s.value {
            Value::List => Err((s.line, "a list where a number belongs".into())),
            Value::Atom(_) if s.appended => Err((s.line, "+= cannot be used with numbers".into())),
            Value::Atom(v) => strtol_whole(v).map(Some).ok_or_else(|| (s.line, format!("{v:?} is not a number"))),
        }
    }

    /// xl's `max_grant_*`: 0 to INT_MAX, and anything else stops xl.
    pub(crate) fn grant_limit(&self, key: &str) -> Result<Option<u32>> {
        let err = |line, reason| Error::XlConfig {
            file: self.source.clone(),
            line: Some(line),
            key: Some(key.into()),
            reason,
        };
        match self.number(key) {
            Ok(None) => Ok(None),
            Ok(Some(n)) => match u32::try_from(n).ok().filter(|&n| i32::try_from(n).is_ok()) {
                Some(n) => Ok(Some(n)),
                None => Err(err(self.map[key].line, format!("{n} is not between 0 and 2147483647"))),
            },
            Err((line, reason)) => Err(err(line, reason)),
        }
    }
}

/// The index just past the list opened at `open`, nested lists included (by depth, without
/// recursion); libxlutil's grammar for lists, items and their newlines.
fn skip_list(toks: &[Lexeme<'_>], open: usize) -> std::result::Result<usize, (u32, String)> {
    let mut depth = 0usize;
    // Whether an item may come next (after `[` or `,`), or a `,`/`]` (after an item).
    let mut want_item = true;
    let mut i = open;
    while let Some(t) = toks.get(i) {
        let ok = match t.token {
            Token::Open if want_item => {
                depth += 1;
                true
            }
            Token::Str { nul: true } => return Err((t.line, "a NUL byte inside a string (xl would abort)".into())),
            Token::Str { .. } | Token::Number if want_item => {
                want_item = false;
                true
            }
            Token::Comma if !want_item => {
                want_item = true;
                true
            }
            Token::Close => {
                depth -= 1;
                want_item = false;
                if depth == 0 {
                    return Ok(i + 1);
                }
                true
            }
            Token::Newline => true,
            _ => false,
        };
        if !ok {
            return Err((t.line, format!("syntax error in a list at {:?}", String::from_utf8_lossy(t.text))));
        }
        i += 1;
    }
    Err((toks.last().map_or(1, |t| t.line), "a list without its ]".into()))
}

/// A quoted string's value, with libxlutil's backslash escapes. Its numeric escapes (`\x..`,
/// `\0`..) are refused: libxlutil reads them wrongly, and one could hide a NUL.
fn dequote(quoted: &[u8]) -> std::result::Result<String, String> {
    let inner = &quoted[1..quoted.len() - 1];
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter().copied();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match bytes.next() {
            Some(c @ (b'"' | b'\'' | b'\\')) => c,
            Some(b'a') => 7,
            Some(b'b') => 8,
            Some(b'f') => 12,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'v') => 11,
            Some(c) => return Err(format!("the escape \\{} is not supported", char::from(c).escape_default())),
            None => return Err("a string ending in a backslash".into()),
        });
    }
    String::from_utf8(out).map_err(|_| format!("{} is not UTF-8", String::from_utf8_lossy(quoted)))
}
