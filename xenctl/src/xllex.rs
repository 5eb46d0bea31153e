//! libxlutil's xl.cfg lexer (libxlu_cfg_l.l, Xen 4.17), byte for byte: its tokens, their
//! longest match, comments that count only with their newline, quoted strings with their
//! escapes, and the error state a stray character starts. Both readers of raw xl.cfg text use
//! it: `xlguard.rs`, which must see exactly the strings libxlutil will dequote, and
//! `xlscan.rs`, which finds the line of every assignment.

/// A token of libxlutil's config lexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    Ident,
    Number,
    /// A quoted string (quotes included); `nul` when it holds a NUL byte.
    Str {
        nul: bool,
    },
    Comma,
    Open,
    Close,
    Append,
    Assign,
    Semicolon,
    Newline,
    /// Text libxlutil reports as a lexical error.
    Error,
}

/// One token, where it is, and its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lexeme<'a> {
    /// What it is.
    pub token: Token,
    /// The line it starts on, from 1.
    pub line: u32,
    /// Its bytes.
    pub text: &'a [u8],
}

/// Splits `data` into tokens as libxlutil's flex scanner does.
pub(crate) fn tokens(data: &[u8]) -> Vec<Lexeme<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut line = 1u32;
    let run = |from: usize, ok: fn(u8) -> bool| from + data[from..].iter().take_while(|&&b| ok(b)).count();
    while pos < data.len() {
        let start = pos;
        let token_line = line;
        let token = match data[pos] {
            b'a'..=b'z' => {
                pos = run(pos + 1, |b| matches!(b, b'.' | b'_' | b'0'..=b'9' | b'a'..=b'z'));
                Token::Ident
            }
            b'0'..=b'9' => {
                pos = run(pos + 1, |b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'x'));
                Token::Number
            }
            b' ' | b'\t' => {
                pos += 1;
                continue;
            }
            b',' => one(&mut pos, Token::Comma),
            b'[' => one(&mut pos, Token::Open),
            b']' => one(&mut pos, Token::Close),
            b'=' => one(&mut pos, Token::Assign),
            b';' => one(&mut pos, Token::Semicolon),
            b'+' if data.get(pos + 1) == Some(&b'=') => {
                pos += 2;
                Token::Append
            }
            b'\n' => {
                line += 1;
                one(&mut pos, Token::Newline)
            }
            // `\#.*\n`: a comment only counts with its newline; at the end of the file the
            // `#` is a stray character.
            b'#' if data[pos..].contains(&b'\n') => {
                pos += data[pos..].iter().take_while(|&&b| b != b'\n').count() + 1;
                line += 1;
                Token::Newline
            }
            q @ (b'\'' | b'"') if string_end(data, pos, q).is_some() => {
                pos = string_end(data, pos, q).map_or(pos + 1, |end| end + 1);
                Token::Str { nul: data[start..pos].contains(&0) }
            }
            _ => {
                // The `.` rule, then the error state: the rest of the word (or one blank),
                // or the newline, which still ends the statement.
                pos += 1;
                match data.get(pos) {
                    Some(b'\n') => {}
                    Some(b' ' | b'\t') => pos += 1,
                    _ => pos = run(pos, |b| !matches!(b, b' ' | b'\t' | b'\n')),
                }
                Token::Error
            }
        };
        out.push(Lexeme { token, line: token_line, text: &data[start..pos] });
    }
    out
}

fn one(pos: &mut usize, token: Token) -> Token {
    *pos += 1;
    token
}

/// Where the string opened by quote `q` at `open` ends (the closing quote), if it does:
/// `q([^q\\\n]|\\.)*q`, where `.` is any byte but a newline.
fn string_end(data: &[u8], open: usize, q: u8) -> Option<usize> {
    let mut i = open + 1;
    loop {
        match *data.get(i)? {
            b'\n' => return None,
            b'\\' => {
                if *data.get(i + 1)? == b'\n' {
                    return None;
                }
                i += 2;
            }
            b if b == q => return Some(i),
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &[u8]) -> Vec<Token> {
        tokens(text).iter().map(|t| t.token).collect()
    }

    #[test]
    fn tokens_follow_libxlutils_lexer() {
        use Token::*;
        let s = Str { nul: false };
        assert_eq!(
            kinds(b"name = 'a\\'b' # c\nmemory=0x1f;disk += [ \"x\",\n]\n"),
            [
                Ident, Assign, s, Newline, Ident, Assign, Number, Semicolon, Ident, Append, Open, s, Comma, Newline,
                Close, Newline
            ]
        );
        // A comment without its newline, an unterminated string, a newline escaped inside one
        // and Python are lexical errors, each up to the next blank.
        assert_eq!(kinds(b"# end"), [Error, Ident]);
        assert_eq!(kinds(b"a = 'x y"), [Ident, Assign, Error, Ident]);
        assert_eq!(kinds(b"a = \"x\\\ny\""), [Ident, Assign, Error, Newline, Ident, Error]);
        assert_eq!(kinds(b"a = f(\"x\\0y\")\n"), [Ident, Assign, Ident, Error, Newline]);
        let lines: Vec<u32> = tokens(b"a=1\n#c\n\nb=2").iter().map(|t| t.line).collect();
        assert_eq!(lines, [1, 1, 1, 1, 2, 3, 4, 4, 4]);
    }
}
