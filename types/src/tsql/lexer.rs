//! The lexer: T-SQL text → [`Token`]s with their 1-based line and column. It drops whitespace
//! and comments (`--` to the end of the line; `/* … */`, which nest as in SQL Server) and turns
//! a `GO` line into a batch separator.

use super::error::TsqlError;
use std::str::Chars;

/// What a token is. Keywords are not told apart from names here: the parser compares words
/// case-insensitively where it expects a keyword.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A keyword or a regular identifier, as written.
    Word(String),
    /// A `[bracketed]` or `"quoted"` identifier, without delimiters and with escapes undone.
    QuotedIdentifier(String),
    /// A `'…'` or `N'…'` string, with `''` undone.
    String { value: String, national: bool },
    /// Decimal digits.
    Integer(String),
    /// Another numeric literal (`1.5`, `1e3`, `0x1F`): valid T-SQL, never a value here.
    Number(String),
    /// One ASCII punctuation character: `(`, `)`, `,`, `=`, `;` …
    Symbol(char),
    /// `GO` on a line of its own: the end of a batch.
    Go,
    /// The end of the script.
    End,
}

/// A token and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub line: usize,
    pub column: usize,
}

impl Token {
    /// Whether this is the keyword `keyword` (given in upper case), in any case.
    pub fn is_keyword(&self, keyword: &str) -> bool {
        matches!(&self.kind, TokenKind::Word(word) if word.eq_ignore_ascii_case(keyword))
    }

    /// The token as an error message shows it.
    pub fn describe(&self) -> String {
        match &self.kind {
            TokenKind::Word(text) | TokenKind::Integer(text) | TokenKind::Number(text) => {
                format!("'{}'", excerpt(text))
            }
            TokenKind::QuotedIdentifier(name) => format!("the quoted name [{}]", excerpt(name)),
            TokenKind::String { value, national } => {
                let prefix = if *national { "N" } else { "" };
                format!("the string {prefix}'{}'", excerpt(value))
            }
            TokenKind::Symbol(symbol) => format!("'{symbol}'"),
            TokenKind::Go => "GO (the end of the batch)".to_string(),
            TokenKind::End => "the end of the script".to_string(),
        }
    }
}

/// At most 40 characters of `text`, control characters escaped, for an error message.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut out = String::new();
    for (index, c) in text.chars().enumerate() {
        if index == MAX_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Produces tokens one at a time, so that the first error in the text is the one reported.
pub(crate) struct Lexer<'a> {
    chars: Chars<'a>,
    line: usize,
    column: usize,
    /// Only spaces and tabs since the last line break (or the start): a `GO` here may be a
    /// batch separator.
    at_line_start: bool,
}

impl<'a> Lexer<'a> {
    pub fn new(text: &'a str) -> Self {
        // Editors save T-SQL with a byte-order mark; it is not part of the first line.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Lexer {
            chars: text.chars(),
            line: 1,
            column: 1,
            at_line_start: true,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.clone().next()
    }

    fn peek_second(&self) -> Option<char> {
        let mut ahead = self.chars.clone();
        ahead.next();
        ahead.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
            self.at_line_start = true;
        } else {
            self.column += 1;
            if c != ' ' && c != '\t' && c != '\r' {
                self.at_line_start = false;
            }
        }
        Some(c)
    }

    /// The next token; [`TokenKind::End`] at the end of the script, and again after it.
    pub fn next_token(&mut self) -> Result<Token, TsqlError> {
        self.skip_whitespace_and_comments()?;
        let (line, column) = (self.line, self.column);
        let at_line_start = self.at_line_start;
        let token = |kind| Token { kind, line, column };
        let Some(c) = self.peek() else {
            return Ok(token(TokenKind::End));
        };
        let kind = match c {
            'N' | 'n' if self.peek_second() == Some('\'') => {
                self.bump();
                let value = self.delimited('\'', line, column)?;
                TokenKind::String {
                    value,
                    national: true,
                }
            }
            '\'' => TokenKind::String {
                value: self.delimited('\'', line, column)?,
                national: false,
            },
            '[' => TokenKind::QuotedIdentifier(self.delimited(']', line, column)?),
            '"' => TokenKind::QuotedIdentifier(self.delimited('"', line, column)?),
            c if c.is_ascii_digit() => self.number(),
            c if c.is_alphabetic() || matches!(c, '_' | '@' | '#') => {
                let word = self.word();
                if at_line_start && word.eq_ignore_ascii_case("GO") && self.rest_of_go_line()? {
                    TokenKind::Go
                } else {
                    TokenKind::Word(word)
                }
            }
            c if c.is_ascii_punctuation() => {
                self.bump();
                TokenKind::Symbol(c)
            }
            found => {
                return Err(TsqlError::UnexpectedCharacter {
                    line,
                    column,
                    found,
                })
            }
        };
        Ok(token(kind))
    }

    fn skip_whitespace_and_comments(&mut self) -> Result<(), TsqlError> {
        loop {
            match (self.peek(), self.peek_second()) {
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
                }
                (Some('-'), Some('-')) => self.skip_line(),
                (Some('/'), Some('*')) => self.skip_block_comment()?,
                _ => return Ok(()),
            }
        }
    }

    /// Skips to the end of the line, leaving the line break.
    fn skip_line(&mut self) {
        while self.peek().is_some_and(|c| c != '\n') {
            self.bump();
        }
    }

    /// Skips a block comment and every comment nested in it.
    fn skip_block_comment(&mut self) -> Result<(), TsqlError> {
        let (line, column) = (self.line, self.column);
        let mut depth = 0usize;
        loop {
            match (self.peek(), self.peek_second()) {
                (Some('/'), Some('*')) => {
                    self.bump();
                    self.bump();
                    depth += 1;
                }
                (Some('*'), Some('/')) => {
                    self.bump();
                    self.bump();
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                (Some(_), _) => {
                    self.bump();
                }
                (None, _) => {
                    return Err(TsqlError::UnterminatedComment {
                        line,
                        column,
                        depth,
                    })
                }
            }
        }
    }

    /// The contents of a string or quoted identifier whose opening delimiter is next; a doubled
    /// closing delimiter stands for one.
    fn delimited(&mut self, close: char, line: usize, column: usize) -> Result<String, TsqlError> {
        self.bump();
        let mut value = String::new();
        loop {
            match self.bump() {
                Some(c) if c == close => {
                    if self.peek() == Some(close) {
                        self.bump();
                        value.push(close);
                    } else {
                        break;
                    }
                }
                Some(c) => value.push(c),
                None if close == '\'' => {
                    return Err(TsqlError::UnterminatedString { line, column })
                }
                None => {
                    return Err(TsqlError::UnterminatedIdentifier {
                        line,
                        column,
                        close,
                    })
                }
            }
        }
        if close != '\'' && value.is_empty() {
            return Err(TsqlError::EmptyIdentifier { line, column });
        }
        Ok(value)
    }

    /// Digits make an integer; digits run on by letters or a dot make another number.
    fn number(&mut self) -> TokenKind {
        let mut text = String::new();
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            self.bump();
            text.push(c);
        }
        let runs_on = |c: &char| c.is_alphanumeric() || matches!(c, '_' | '.');
        if self.peek().as_ref().is_some_and(runs_on) {
            while let Some(c) = self.peek().filter(runs_on) {
                self.bump();
                text.push(c);
            }
            return TokenKind::Number(text);
        }
        TokenKind::Integer(text)
    }

    fn word(&mut self) -> String {
        let mut text = String::new();
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '@' | '#' | '$'))
        {
            self.bump();
            text.push(c);
        }
        text
    }

    /// After a `GO` at the start of a line: whether the rest of the line makes it a batch
    /// separator (only spaces, tabs and a `--` comment may follow). Consumes that rest if so.
    /// `GO n` (run the batch n times) is refused as unsupported.
    fn rest_of_go_line(&mut self) -> Result<bool, TsqlError> {
        let mut ahead = self.chars.clone();
        let mut column = self.column;
        let mut count_at = None;
        let mut seen_blank = false;
        loop {
            let mut after = ahead.clone();
            match after.next() {
                None | Some('\n') => break,
                Some('\r') if matches!(after.clone().next(), None | Some('\n')) => break,
                Some(' ' | '\t') => seen_blank = true,
                Some('-') if after.next() == Some('-') => break,
                Some(c) if c.is_ascii_digit() && seen_blank && count_at.is_none() => {
                    count_at = Some(column);
                    while ahead.clone().next().is_some_and(|c| c.is_ascii_digit()) {
                        ahead.next();
                        column += 1;
                    }
                    seen_blank = false;
                    continue;
                }
                Some(_) => return Ok(false),
            }
            ahead.next();
            column += 1;
        }
        if let Some(column) = count_at {
            return Err(TsqlError::Unsupported {
                line: self.line,
                column,
                what: "GO with a count (running a batch more than once)".to_string(),
            });
        }
        self.skip_line();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        let mut lexer = Lexer::new(text);
        let mut out = Vec::new();
        loop {
            let token = lexer.next_token().expect("the text lexes");
            if token.kind == TokenKind::End {
                return out;
            }
            out.push(token.kind);
        }
    }

    fn error(text: &str) -> TsqlError {
        let mut lexer = Lexer::new(text);
        loop {
            match lexer.next_token() {
                Ok(token) if token.kind == TokenKind::End => panic!("{text:?} lexes"),
                Ok(_) => {}
                Err(error) => return error,
            }
        }
    }

    fn word(text: &str) -> TokenKind {
        TokenKind::Word(text.into())
    }

    #[test]
    fn words_keep_their_spelling_and_compare_case_insensitively() {
        let token = Lexer::new("cReAtE").next_token().unwrap();
        assert_eq!(token.kind, word("cReAtE"));
        assert!(token.is_keyword("CREATE"));
        assert_eq!(
            kinds("a_b1 @v #t é$"),
            [word("a_b1"), word("@v"), word("#t"), word("é$")]
        );
    }

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        let mut lexer = Lexer::new("ab\n\t é  (");
        let first = lexer.next_token().unwrap();
        assert_eq!((first.line, first.column), (1, 1));
        let second = lexer.next_token().unwrap();
        assert_eq!((second.line, second.column), (2, 3));
        let third = lexer.next_token().unwrap();
        assert_eq!(
            (third.line, third.column, third.kind),
            (2, 6, TokenKind::Symbol('('))
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_a_column() {
        let token = Lexer::new("\u{feff}GO x").next_token().unwrap();
        assert_eq!((token.line, token.column), (1, 1));
    }

    #[test]
    fn strings_undo_doubled_quotes_and_remember_the_n_prefix() {
        assert_eq!(
            kinds("'it''s' N'ü' n'' '--not a comment'"),
            [
                TokenKind::String {
                    value: "it's".into(),
                    national: false
                },
                TokenKind::String {
                    value: "ü".into(),
                    national: true
                },
                TokenKind::String {
                    value: String::new(),
                    national: true
                },
                TokenKind::String {
                    value: "--not a comment".into(),
                    national: false
                },
            ]
        );
    }

    #[test]
    fn a_string_may_span_lines_and_positions_continue_after_it() {
        let mut lexer = Lexer::new("'a\nb' x");
        lexer.next_token().unwrap();
        let after = lexer.next_token().unwrap();
        assert_eq!((after.line, after.column), (2, 4));
    }

    #[test]
    fn quoted_identifiers_undo_doubled_delimiters() {
        assert_eq!(
            kinds(r#"[a]]b] "c""d" [GO] [with space]"#),
            [
                TokenKind::QuotedIdentifier("a]b".into()),
                TokenKind::QuotedIdentifier("c\"d".into()),
                TokenKind::QuotedIdentifier("GO".into()),
                TokenKind::QuotedIdentifier("with space".into()),
            ]
        );
    }

    #[test]
    fn line_comments_run_to_the_end_of_the_line() {
        assert_eq!(kinds("a -- b c\nd--e"), [word("a"), word("d")]);
    }

    #[test]
    fn block_comments_nest() {
        assert_eq!(kinds("a /* b /* c */ d */ e"), [word("a"), word("e")]);
        assert_eq!(kinds("a/**/b"), [word("a"), word("b")]);
        assert_eq!(kinds("a /* -- */ b"), [word("a"), word("b")]);
    }

    #[test]
    fn an_unterminated_nested_comment_points_at_its_outermost_opening() {
        assert_eq!(
            error("x\n  /* a /* b */ c"),
            TsqlError::UnterminatedComment {
                line: 2,
                column: 3,
                depth: 1
            }
        );
        assert_eq!(
            error("/* /* /*"),
            TsqlError::UnterminatedComment {
                line: 1,
                column: 1,
                depth: 3
            }
        );
    }

    #[test]
    fn unterminated_strings_and_names_point_at_their_opening() {
        assert_eq!(
            error("a\n  N'abc"),
            TsqlError::UnterminatedString { line: 2, column: 3 }
        );
        assert_eq!(
            error("'it''"),
            TsqlError::UnterminatedString { line: 1, column: 1 }
        );
        assert_eq!(
            error(" [a]]"),
            TsqlError::UnterminatedIdentifier {
                line: 1,
                column: 2,
                close: ']'
            }
        );
        assert_eq!(
            error("\"a"),
            TsqlError::UnterminatedIdentifier {
                line: 1,
                column: 1,
                close: '"'
            }
        );
    }

    #[test]
    fn empty_quoted_names_are_refused() {
        assert_eq!(
            error("a []"),
            TsqlError::EmptyIdentifier { line: 1, column: 3 }
        );
        assert_eq!(
            error("\"\""),
            TsqlError::EmptyIdentifier { line: 1, column: 1 }
        );
    }

    #[test]
    fn integers_and_other_numbers_are_told_apart() {
        assert_eq!(
            kinds("30000 1.5 0x1F 007"),
            [
                TokenKind::Integer("30000".into()),
                TokenKind::Number("1.5".into()),
                TokenKind::Number("0x1F".into()),
                TokenKind::Integer("007".into()),
            ]
        );
    }

    #[test]
    fn go_on_its_own_line_separates_batches() {
        assert_eq!(
            kinds("a\nGO\nb\n  go  -- next\r\nc\nGo"),
            [
                word("a"),
                TokenKind::Go,
                word("b"),
                TokenKind::Go,
                word("c"),
                TokenKind::Go
            ]
        );
    }

    #[test]
    fn go_elsewhere_is_a_word() {
        assert_eq!(kinds("a GO"), [word("a"), word("GO")]);
        assert_eq!(kinds("GO;"), [word("GO"), TokenKind::Symbol(';')]);
        assert_eq!(kinds("GO x"), [word("GO"), word("x")]);
        assert_eq!(kinds("/* */ GO"), [word("GO")]);
        assert_eq!(kinds("GOTO"), [word("GOTO")]);
    }

    #[test]
    fn go_with_a_count_is_unsupported_at_the_count() {
        assert_eq!(
            error("a\nGO 2\n"),
            TsqlError::Unsupported {
                line: 2,
                column: 4,
                what: "GO with a count (running a batch more than once)".into()
            }
        );
        assert_eq!(kinds("GO 2x"), [word("GO"), TokenKind::Number("2x".into())]);
    }

    #[test]
    fn control_and_non_ascii_symbols_are_unexpected() {
        assert_eq!(
            error("a\u{7}"),
            TsqlError::UnexpectedCharacter {
                line: 1,
                column: 2,
                found: '\u{7}'
            }
        );
        assert_eq!(
            error("→"),
            TsqlError::UnexpectedCharacter {
                line: 1,
                column: 1,
                found: '→'
            }
        );
    }

    #[test]
    fn the_end_repeats() {
        let mut lexer = Lexer::new("  -- only a comment");
        assert_eq!(lexer.next_token().unwrap().kind, TokenKind::End);
        assert_eq!(lexer.next_token().unwrap().kind, TokenKind::End);
    }

    #[test]
    fn long_tokens_are_shortened_in_messages() {
        let token = Token {
            kind: TokenKind::String {
                value: "x".repeat(50) + "\n",
                national: true,
            },
            line: 1,
            column: 1,
        };
        assert_eq!(
            token.describe(),
            format!("the string N'{}…'", "x".repeat(40))
        );
        let token = Token {
            kind: TokenKind::Word("a\tb".into()),
            line: 1,
            column: 1,
        };
        assert_eq!(token.describe(), "'a\\tb'");
    }
}
