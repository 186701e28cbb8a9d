//! The dialect copyguard parses with: sqlparser's PostgreSQL dialect, with
//! a shortcut in expression parsing.
//!
//! For every token that starts an expression, sqlparser first tries to
//! read a typed string (`DATE '2020-01-01'`, `mytype 'x'`): it parses a
//! data type and, for a column reference, a call or a literal, fails and
//! rolls back, having built the type's name and formatted an error to
//! throw away. That attempt was about a tenth of a fresh analysis.
//! [`Postgres::parse_prefix`] skips it where the tokens show it cannot
//! succeed, and builds what sqlparser builds after it:
//! - a name (no keyword, or a keyword in [`plain_word`]'s list) not
//!   followed by a literal, type modifiers or array brackets: the
//!   identifier, or with `(` after it the function call;
//! - a number, string or placeholder: the value.
//!
//! Every other token is left to sqlparser. A call that fails is remembered
//! by position as sqlparser remembers failed expressions, since the
//! shortcut runs before sqlparser's own memo ([`Postgres::call`]).
//!
//! One difference remains, at sqlparser's nesting limit: the typed-string
//! attempt spends a level of sqlparser's recursion budget, so an
//! expression at the deepest level may be refused there and parse here.
//! The budget guards the stack, and the shortcut recurses no deeper.
//!
//! Everything else is [`PostgreSqlDialect`]'s: [`Postgres`] reports its
//! type to the parser's dialect checks and delegates each method the
//! PostgreSQL dialect overrides in sqlparser 0.64.0 (pinned in
//! `Cargo.toml`: an upgrade must re-check this list against
//! `src/dialect/postgresql.rs`). The tests, and the `sql` fuzz target,
//! hold the parses to [`PostgreSqlDialect`]'s.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;

use sqlparser::ast::{Expr, Ident, ObjectName};
use sqlparser::dialect::{BindPlaceholderStyle, Dialect, PostgreSqlDialect, Precedence};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan};

/// sqlparser's PostgreSQL dialect with plain identifiers, function calls
/// and literals parsed without the typed-string attempt (see the module
/// doc). One value parses one statement list.
#[derive(Debug, Default)]
pub(crate) struct Postgres {
    /// Token positions where a function call failed, and whether by the
    /// nesting limit ([`Postgres::call`]).
    failed_calls: RefCell<HashMap<usize, bool>>,
}

const PG: PostgreSqlDialect = PostgreSqlDialect {};

/// Methods without arguments answered as [`PostgreSqlDialect`] answers.
macro_rules! as_postgres {
    ($($name:ident),* $(,)?) => {
        $(fn $name(&self) -> bool { PG.$name() })*
    };
}

impl Dialect for Postgres {
    fn dialect(&self) -> TypeId {
        TypeId::of::<PostgreSqlDialect>()
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let TokenWithSpan { token, span } = parser.peek_token_ref();
        match token {
            Token::Word(word)
                if plain_word(word.keyword) && !word.value.eq_ignore_ascii_case("xml") =>
            {
                let plain = plain_start(parser)?;
                let ident = word.to_ident(*span);
                match plain {
                    Plain::Call => self.call(parser, ident),
                    Plain::Name => {
                        parser.advance_token();
                        Some(Ok(Expr::Identifier(ident)))
                    }
                }
            }
            // The literals sqlparser reads with `parse_value` after the
            // typed-string attempt, which for them never succeeds (and
            // whose reading of them never fails).
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Placeholder(_) => Some(parser.parse_value().map(Expr::Value)),
            _ => None,
        }
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        PG.identifier_quote_style(identifier)
    }

    fn ordered_bind_placeholder_style(&self) -> Option<BindPlaceholderStyle> {
        PG.ordered_bind_placeholder_style()
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        PG.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        PG.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        PG.is_identifier_part(ch)
    }

    fn is_reserved_for_identifier(&self, kw: Keyword) -> bool {
        PG.is_reserved_for_identifier(kw)
    }

    fn is_table_alias(&self, kw: &Keyword, parser: &mut Parser) -> bool {
        PG.is_table_alias(kw, parser)
    }

    fn supports_string_literal_column_alias(&self, explicit: bool) -> bool {
        PG.supports_string_literal_column_alias(explicit)
    }

    fn supports_string_literal_table_alias(&self, explicit: bool) -> bool {
        PG.supports_string_literal_table_alias(explicit)
    }

    fn is_custom_operator_part(&self, ch: char) -> bool {
        PG.is_custom_operator_part(ch)
    }

    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        PG.get_next_precedence(parser)
    }

    fn prec_value(&self, prec: Precedence) -> u8 {
        PG.prec_value(prec)
    }

    fn is_interval_qualifier(&self, kw: Keyword) -> bool {
        PG.is_interval_qualifier(kw)
    }

    fn is_custom_type_typed_string(&self, first_keyword: Keyword, qualified: bool) -> bool {
        PG.is_custom_type_typed_string(first_keyword, qualified)
    }

    as_postgres!(
        supports_cte_materialization,
        supports_unicode_string_literal,
        supports_filter_during_aggregation,
        supports_group_by_expr,
        supports_drop_group,
        supports_alter_user_as_alter_role,
        supports_create_group,
        supports_create_role_if_not_exists,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_create_index_with_clause,
        supports_sql_option_without_value,
        supports_explain_with_utility_options,
        supports_listen_notify,
        supports_exclude_constraint,
        supports_factorial_operator,
        supports_bitwise_shift_operators,
        supports_tilde_like_match_operator,
        supports_comparison_in_between_low_bound,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_colon_operator,
        supports_named_fn_args_with_expr_name,
        supports_named_fn_args_with_assignment_operator,
        supports_empty_projections,
        supports_nested_comments,
        supports_copy_from_stdin_data,
        supports_string_escape_constant,
        supports_numeric_literal_underscores,
        supports_non_decimal_integer_literals,
        supports_array_typedef_with_brackets,
        supports_geometric_types,
        supports_order_by_using_operator,
        supports_set_names,
        supports_alter_column_type_using,
        supports_left_associative_joins_without_parens,
        supports_notnull_operator,
        supports_interval_options,
        supports_insert_table_alias,
        supports_create_table_like_parenthesized,
        supports_select_wildcard_with_alias,
        supports_comma_separated_trim,
        supports_xml_expressions,
        supports_aliased_function_args,
        supports_comment_optimizer_hint,
        supports_add_column_if_not_exists,
        supports_attach_partition_of,
        supports_detach_partition_of,
        supports_table_inheritance_markers,
        supports_column_generic_options,
    );
}

impl Postgres {
    /// `name(...)`: the call sqlparser parses after its typed-string
    /// attempt, with sqlparser's memo of failed positions kept here for
    /// these positions (the shortcut runs before sqlparser consults its
    /// own): a position that failed once fails again at once, with the
    /// error sqlparser's memo gives. Without it, failing nested calls
    /// would be parsed again at every level, twice as often per level.
    fn call(&self, parser: &mut Parser, ident: Ident) -> Option<Result<Expr, ParserError>> {
        let at = parser.index();
        if let Some(&recursion) = self.failed_calls.borrow().get(&at) {
            return Some(if recursion {
                Err(ParserError::RecursionLimitExceeded)
            } else {
                parser.expected_ref("an expression", parser.peek_token_ref())
            });
        }
        parser.advance_token();
        let parsed = parser.parse_function(ObjectName::from(vec![ident]));
        if let Err(e) = &parsed {
            let recursion = matches!(e, ParserError::RecursionLimitExceeded);
            self.failed_calls.borrow_mut().insert(at, recursion);
        }
        Some(parsed)
    }
}

/// Whether a word with this keyword (none, for most names) reads as a
/// name in expressions: no data type of its own in sqlparser's
/// `parse_data_type`, no meaning of its own in its reserved-word prefixes
/// (`CAST`, `CURRENT_USER`, geometric types…). The keywords are common
/// column and function names; the tests try every keyword in each place.
fn plain_word(keyword: Keyword) -> bool {
    matches!(
        keyword,
        Keyword::NoKeyword
            | Keyword::ABS
            | Keyword::AVG
            | Keyword::CATEGORY
            | Keyword::COALESCE
            | Keyword::COMMENT
            | Keyword::COUNT
            | Keyword::DATA
            | Keyword::DENSE_RANK
            | Keyword::FIRST_VALUE
            | Keyword::HASH
            | Keyword::ID
            | Keyword::KEY
            | Keyword::LAG
            | Keyword::LANGUAGE
            | Keyword::LAST_VALUE
            | Keyword::LEAD
            | Keyword::LEAST
            | Keyword::LEVEL
            | Keyword::LOCATION
            | Keyword::LOWER
            | Keyword::MAX
            | Keyword::MIN
            | Keyword::NAME
            | Keyword::NULLIF
            | Keyword::NUMBER
            | Keyword::OWNER
            | Keyword::PASSWORD
            | Keyword::RANK
            | Keyword::ROLE
            | Keyword::ROW_NUMBER
            | Keyword::SCHEMA
            | Keyword::SIZE
            | Keyword::SOURCE
            | Keyword::STATUS
            | Keyword::SUM
            | Keyword::TARGET
            | Keyword::UPPER
            | Keyword::URL
            | Keyword::VALUE
            | Keyword::VERSION
    )
}

/// What a word that sqlparser's typed-string attempt cannot read as a
/// typed string starts.
enum Plain {
    /// A name, or the first part of a dotted one.
    Name,
    /// A function call: the word is followed by `(`.
    Call,
}

/// What the word at the parser's position starts, when sqlparser's
/// typed-string attempt there must fail; `None` when it may succeed. The
/// attempt reads a dotted name as a type, then type modifiers (words,
/// numbers and strings between commas in parentheses), array brackets
/// (`[`, `ARRAY`, MySQL's `ZEROFILL`), and succeeds only when a literal
/// follows. So it fails when the parentheses hold anything else, or when
/// the name (or the modifiers' closing parenthesis) is followed by a word
/// other than those or by punctuation that cannot start a literal or
/// brackets.
fn plain_start(parser: &Parser) -> Option<Plain> {
    let mut ahead = Ahead::new(parser);
    ahead.next();
    let mut next = ahead.next();
    let plain = if next == &Token::LParen {
        Plain::Call
    } else {
        Plain::Name
    };
    while next == &Token::Period {
        if !matches!(ahead.next(), Token::Word(_)) {
            return None;
        }
        next = ahead.next();
    }
    if next == &Token::LParen {
        loop {
            match ahead.next() {
                Token::Word(_)
                | Token::Number(..)
                | Token::SingleQuotedString(_)
                | Token::Comma => {}
                Token::RParen => break,
                _ => return Some(plain),
            }
        }
        next = ahead.next();
    }
    let fails = match next {
        Token::Word(w) => !matches!(w.keyword, Keyword::ARRAY | Keyword::ZEROFILL),
        token => ends_expression(token),
    };
    fails.then_some(plain)
}

/// The parser's tokens from its position on, whitespace skipped (each
/// step O(1), where `peek_nth_token_ref` walks from the position again).
struct Ahead<'p, 'd> {
    parser: &'p Parser<'d>,
    index: usize,
}

impl<'p, 'd> Ahead<'p, 'd> {
    fn new(parser: &'p Parser<'d>) -> Self {
        Ahead {
            parser,
            index: parser.index(),
        }
    }

    /// The next significant token, or EOF past the end.
    fn next(&mut self) -> &'p Token {
        loop {
            let token = &self.parser.token_at(self.index).token;
            self.index += 1;
            if !matches!(token, Token::Whitespace(_)) {
                return token;
            }
        }
    }
}

/// Punctuation and operators that can follow a column reference and
/// cannot start a literal, type modifiers or array brackets.
fn ends_expression(token: &Token) -> bool {
    matches!(
        token,
        Token::EOF
            | Token::Comma
            | Token::RParen
            | Token::RBracket
            | Token::SemiColon
            | Token::Eq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::DoubleColon
    )
}

#[cfg(test)]
#[path = "dialect_tests.rs"]
mod tests;
