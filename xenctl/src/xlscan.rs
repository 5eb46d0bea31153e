//! Where each key of an xl.cfg file is assigned: a light parse of the statements, over the
//! tokens of libxlutil's own lexer (`xllex.rs`), that records the line of every assignment and
//! of every top-level list item.
//!
//! libxlutil stays the parser of the values; its public API keeps no line numbers, so this
//! scan exists only to point errors at lines. It runs on text libxlutil has already accepted
//! and never fails: on anything unexpected it just records less.

use std::collections::HashMap;

use crate::xllex::{Lexeme, Token, tokens};

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
    /// Scans the text `data`.
    pub(crate) fn scan(data: &[u8]) -> KeyLines {
        let assignments = statements(data);
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

/// Every assignment of `data`, in file order.
fn statements(data: &[u8]) -> Vec<Assignment> {
    let mut out = Vec::new();
    let mut current: Option<Assignment> = None;
    let mut expect = Expect::Key;
    for Lexeme { token, line, text } in tokens(data) {
        let in_list = matches!(expect, Expect::List { .. });
        let end = matches!(token, Token::Newline | Token::Semicolon);
        if end && !in_list {
            out.extend(current.take());
            expect = Expect::Key;
            continue;
        }
        let value = matches!(token, Token::Ident | Token::Number | Token::Str { .. });
        expect = match (expect, token) {
            (Expect::Key, Token::Ident) => {
                let key = String::from_utf8_lossy(text).into_owned();
                current = Some(Assignment { key, line, append: false, items: Vec::new() });
                Expect::Operator
            }
            (Expect::Operator, Token::Assign) => Expect::Value,
            (Expect::Operator, Token::Append) => {
                if let Some(a) = current.as_mut() {
                    a.append = true;
                }
                Expect::Value
            }
            (Expect::Value, _) if value => Expect::EndOfStatement,
            (Expect::Value, Token::Open) => Expect::List { depth: 1, item: true },
            (Expect::List { depth, item }, _) if value || token == Token::Open => {
                if item
                    && depth == 1
                    && let Some(a) = current.as_mut()
                {
                    a.items.push(line);
                }
                if token == Token::Open {
                    Expect::List { depth: depth + 1, item: true }
                } else {
                    Expect::List { depth, item: false }
                }
            }
            (Expect::List { depth, .. }, Token::Comma) => Expect::List { depth, item: true },
            (Expect::List { depth, item }, _) if end => Expect::List { depth, item },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(String, u32, bool, Vec<u32>)> {
        KeyLines::scan(text.as_bytes())
            .assignments()
            .iter()
            .map(|a| (a.key.clone(), a.line, a.append, a.items.clone()))
            .collect()
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
        let k = KeyLines::scan(b"memory = 1\nmemory = 2\ndisk = ['a']\ndisk += [\n 'b' ]\n");
        assert_eq!(k.line("memory"), Some(2));
        assert_eq!(k.line("disk"), Some(4));
        assert_eq!((k.item_line("disk", 0), k.item_line("disk", 1)), (Some(3), Some(5)));
        assert_eq!(k.item_line("disk", 7), Some(4));
        assert_eq!(k.line("vif"), None);
    }

    #[test]
    fn garbage_never_panics() {
        for text in ["= = =", "[[[", "a = [ 'x", "'unterminated", "a += ]", "ü = 1", "a = \"\\", "a\n=\n1"] {
            let _ = KeyLines::scan(text.as_bytes());
        }
    }
}
