//! Where each key of an xl.cfg file is assigned: a light scan of the text that knows the file
//! format's tokens (comments, quoted strings with escapes, `[ ... ]` lists over several lines,
//! `;` and `+=`) and records the line of every assignment and of every top-level list item.
//!
//! libxlutil stays the parser of the values; its public API keeps no line numbers, so this
//! scan exists only to point errors at lines. It runs on text libxlutil has already accepted,
//! follows the same token rules as libxlutil's lexer (libxlu_cfg_l.l), and never fails: on
//! anything unexpected it just records less.

use std::collections::HashMap;

/// One `key = value` or `key += value` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assignment {
    /// The key.
    pub key: String,
    /// The 1-based line the key is on.
    pub line: u32,
    /// `+=` rather than `=`.
    pub append: bool,
    /// For a list value, the line of each top-level item, in order.
    pub items: Vec<u32>,
}

/// The lines of a file's assignments, and the effective line of each key: libxlutil keeps
/// the last assignment of a key (`+=` extends the one before it).
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyLines {
    assignments: Vec<Assignment>,
    effective: HashMap<String, (u32, Vec<u32>)>,
}

impl KeyLines {
    /// Scans `text`.
    pub(crate) fn scan(text: &str) -> KeyLines {
        let assignments = Scanner::new(text).run();
        let mut effective: HashMap<String, (u32, Vec<u32>)> = HashMap::new();
        for a in &assignments {
            let items = match effective.get(&a.key) {
                Some((_, earlier)) if a.append => earlier.iter().chain(&a.items).copied().collect(),
                _ => a.items.clone(),
            };
            effective.insert(a.key.clone(), (a.line, items));
        }
        KeyLines { assignments, effective }
    }

    /// Every assignment, in file order.
    pub(crate) fn assignments(&self) -> &[Assignment] {
        &self.assignments
    }

    /// The line of the assignment libxlutil uses for `key`.
    pub(crate) fn line(&self, key: &str) -> Option<u32> {
        self.effective.get(key).map(|(line, _)| *line)
    }

    /// The line of item `index` of list `key` (falling back to the key's line).
    pub(crate) fn item_line(&self, key: &str, index: usize) -> Option<u32> {
        let (line, items) = self.effective.get(key)?;
        Some(items.get(index).copied().unwrap_or(*line))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Word,
    Str,
    Assign,
    Append,
    Open,
    Close,
    Comma,
    End,
    Other,
}

/// What the statement scanner expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Key,
    Operator,
    Value,
    /// Inside a list at `depth`; `item` when the next value starts an item.
    List {
        depth: u32,
        item: bool,
    },
    /// After a complete value, or after something unexpected: skip to the statement's end.
    EndOfStatement,
}

struct Scanner<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    text: &'a str,
    line: u32,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Scanner<'a> {
        Scanner { chars: text.char_indices().peekable(), text, line: 1 }
    }

    /// The next token, its line, and (for words) its text.
    fn token(&mut self) -> Option<(Token, u32, &'a str)> {
        loop {
            let (start, c) = self.chars.next()?;
            let line = self.line;
            let tok = match c {
                ' ' | '\t' => continue,
                '\n' => {
                    self.line += 1;
                    Token::End
                }
                '#' => {
                    // A comment runs to the end of the line; the newline ends the statement.
                    for (_, c) in self.chars.by_ref() {
                        if c == '\n' {
                            self.line += 1;
                            break;
                        }
                    }
                    Token::End
                }
                ';' => Token::End,
                '=' => Token::Assign,
                '+' if self.chars.peek().is_some_and(|&(_, c)| c == '=') => {
                    self.chars.next();
                    Token::Append
                }
                '[' => Token::Open,
                ']' => Token::Close,
                ',' => Token::Comma,
                '"' | '\'' => {
                    // Quoted strings never span lines; a backslash escapes the next character.
                    while let Some(&(_, next)) = self.chars.peek() {
                        if next == '\n' {
                            break;
                        }
                        self.chars.next();
                        if next == '\\' {
                            if self.chars.peek().is_some_and(|&(_, c)| c != '\n') {
                                self.chars.next();
                            }
                        } else if next == c {
                            break;
                        }
                    }
                    Token::Str
                }
                c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => {
                    let mut end = start + c.len_utf8();
                    while let Some(&(i, next)) = self.chars.peek() {
                        if !(next.is_ascii_alphanumeric() || next == '_' || next == '.') {
                            break;
                        }
                        end = i + next.len_utf8();
                        self.chars.next();
                    }
                    return Some((Token::Word, line, &self.text[start..end]));
                }
                _ => Token::Other,
            };
            return Some((tok, line, ""));
        }
    }

    fn run(mut self) -> Vec<Assignment> {
        let mut out = Vec::new();
        let mut current: Option<Assignment> = None;
        let mut expect = Expect::Key;
        while let Some((tok, line, word)) = self.token() {
            let in_list = matches!(expect, Expect::List { .. });
            if tok == Token::End && !in_list {
                out.extend(current.take());
                expect = Expect::Key;
                continue;
            }
            expect = match (expect, tok) {
                (Expect::Key, Token::Word) => {
                    current = Some(Assignment { key: word.to_string(), line, append: false, items: Vec::new() });
                    Expect::Operator
                }
                (Expect::Operator, Token::Assign) => Expect::Value,
                (Expect::Operator, Token::Append) => {
                    if let Some(a) = current.as_mut() {
                        a.append = true;
                    }
                    Expect::Value
                }
                (Expect::Value, Token::Word | Token::Str) => Expect::EndOfStatement,
                (Expect::Value, Token::Open) => Expect::List { depth: 1, item: true },
                (Expect::List { depth, item }, Token::Word | Token::Str | Token::Open) => {
                    if item
                        && depth == 1
                        && let Some(a) = current.as_mut()
                    {
                        a.items.push(line);
                    }
                    if tok == Token::Open {
                        Expect::List { depth: depth + 1, item: true }
                    } else {
                        Expect::List { depth, item: false }
                    }
                }
                (Expect::List { depth, .. }, Token::Comma) => Expect::List { depth, item: true },
                (Expect::List { depth, item }, Token::End) => Expect::List { depth, item },
                (Expect::List { depth: 1, .. }, Token::Close) => Expect::EndOfStatement,
                (Expect::List { depth, .. }, Token::Close) => Expect::List { depth: depth - 1, item: false },
                _ => {
                    // Not the shape of a statement: drop it (libxlutil would have refused it).
                    current = None;
                    Expect::EndOfStatement
                }
            };
        }
        out.extend(current);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(String, u32, bool, Vec<u32>)> {
        KeyLines::scan(text).assignments().iter().map(|a| (a.key.clone(), a.line, a.append, a.items.clone())).collect()
    }

    #[test]
    fn assignments_comments_and_semicolons() {
        let text = "# a comment with name = \"x\"\nname = \"web\" # trailing\n\nmemory=512; vcpus = 2\n";
        assert_eq!(
            lines(text),
            vec![
                ("name".into(), 2, false, vec![]),
                ("memory".into(), 4, false, vec![]),
                ("vcpus".into(), 4, false, vec![])
            ]
        );
    }

    #[test]
    fn strings_hide_comment_signs_brackets_and_escaped_quotes() {
        let text = "extra = \"a # b [ ] ; \\\" c\"\nroot = 'x\\'y'\nkernel = \"/k\"";
        let got = lines(text);
        assert_eq!(
            got.iter().map(|(k, l, ..)| (k.as_str(), *l)).collect::<Vec<_>>(),
            [("extra", 1), ("root", 2), ("kernel", 3)]
        );
    }

    #[test]
    fn multi_line_lists_record_each_item() {
        let text = "disk = [\n  'a',   # first\n\n  'b', 'c',\n]\nvif = [ '' ]\nusbdevice = [ [ 'x' ], 'y' ]\n";
        let got = lines(text);
        assert_eq!(got[0], ("disk".into(), 1, false, vec![2, 4, 4]));
        assert_eq!(got[1], ("vif".into(), 6, false, vec![6]));
        assert_eq!(got[2], ("usbdevice".into(), 7, false, vec![7, 7]));
    }

    #[test]
    fn the_last_assignment_wins_and_append_extends() {
        let k = KeyLines::scan("memory = 1\nmemory = 2\ndisk = ['a']\ndisk += [\n 'b' ]\n");
        assert_eq!(k.line("memory"), Some(2));
        assert_eq!(k.line("disk"), Some(4));
        assert_eq!((k.item_line("disk", 0), k.item_line("disk", 1)), (Some(3), Some(5)));
        assert_eq!(k.item_line("disk", 7), Some(4));
        assert_eq!(k.line("vif"), None);
    }

    #[test]
    fn garbage_never_panics() {
        for text in ["= = =", "[[[", "a = [ 'x", "'unterminated", "a += ]", "ü = 1", "a = \"\\", "a\n=\n1"] {
            let _ = KeyLines::scan(text);
        }
    }
}
