//! The recursive-descent parser: tokens → [`Statement`]s. One method per grammar rule, named
//! after it; each error names what the rule allows at that point and the token found there.

use super::command::{AgAction, AgCommand, AgSetting, DatabaseCommand, HadrAction, ReplicaChange};
use super::error::TsqlError;
use super::keywords::{self, is_reserved, starts_statement};
use super::lexer::{excerpt, Lexer, Token, TokenKind};
use super::{Script, ScriptStatement, Statement};
use crate::config::{AgConfig, ReplicaConfig, RoutingEntry};

type Result<T> = std::result::Result<T, TsqlError>;

const STATEMENT: &str =
    "a statement: CREATE AVAILABILITY GROUP, ALTER AVAILABILITY GROUP or ALTER DATABASE … SET HADR";
const AG_OPTIONS: &str = "AUTOMATED_BACKUP_PREFERENCE, FAILURE_CONDITION_LEVEL, HEALTH_CHECK_TIMEOUT, DB_FAILOVER, REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT, CLUSTER_TYPE";
const SET_OPTIONS: &str = "AUTOMATED_BACKUP_PREFERENCE, FAILURE_CONDITION_LEVEL, HEALTH_CHECK_TIMEOUT, DB_FAILOVER, REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT, ROLE";
/// Valid availability-group options that hadr does not model.
const AG_UNSUPPORTED: &[&str] = &[
    "BASIC",
    "CLUSTER_CONNECTION_OPTIONS",
    "CONTAINED",
    "DISTRIBUTED",
    "DTC_SUPPORT",
    "REUSE_SYSTEM_DATABASES",
];
const REPLICA_OPTIONS: &str = "ENDPOINT_URL, AVAILABILITY_MODE, FAILOVER_MODE, SEEDING_MODE, BACKUP_PRIORITY, SESSION_TIMEOUT, SECONDARY_ROLE, PRIMARY_ROLE";
const SECONDARY_ROLE_OPTIONS: &str = "ALLOW_CONNECTIONS, READ_ONLY_ROUTING_URL";
const PRIMARY_ROLE_OPTIONS: &str =
    "ALLOW_CONNECTIONS, READ_ONLY_ROUTING_LIST, READ_WRITE_ROUTING_URL";
const ALTER_ACTIONS: &str = "an ALTER AVAILABILITY GROUP action: FAILOVER, FORCE_FAILOVER_ALLOW_DATA_LOSS, SET (…), ADD DATABASE, REMOVE DATABASE, ADD REPLICA ON, REMOVE REPLICA ON or MODIFY REPLICA ON";
const REPLICA_NAME: &str = "a replica name in quotes, such as N'SQL1'";
const URL: &str = "a string such as N'tcp://host:5022'";
const ONE_CHANGE: &str = "')': MODIFY REPLICA changes one option per statement";

/// Parses a whole script (see [`super::parse_script`]).
pub(crate) fn parse(text: &str) -> Result<Script> {
    let mut parser = Parser {
        lexer: Lexer::new(text),
        peeked: None,
    };
    let mut statements = Vec::new();
    let mut batch = 1;
    loop {
        let token = parser.peek()?.clone();
        match token.kind {
            TokenKind::End => break,
            TokenKind::Go => {
                parser.advance()?;
                batch += 1;
            }
            TokenKind::Symbol(';') => {
                parser.advance()?;
            }
            _ => {
                let statement = parser.statement(&token)?;
                statements.push(ScriptStatement {
                    line: token.line,
                    column: token.column,
                    batch,
                    statement,
                });
            }
        }
    }
    Ok(Script { statements })
}

/// The availability group's name with every option at the default of [`AgConfig`].
fn default_ag_config(name: String) -> AgConfig {
    // The defaults live in config.rs as serde defaults; a constant document picks them up.
    let mut config: AgConfig = serde_json::from_str(r#"{ "name": "", "replicas": [] }"#)
        .expect("a name and no replicas are a complete AgConfig document");
    config.name = name;
    config
}

/// A replica with every option at the default of [`ReplicaConfig`]; the two modes, which have
/// no default, are filled in by the WITH list (the parser checks that it gives both).
fn default_replica(name: String) -> ReplicaConfig {
    let mut replica: ReplicaConfig = serde_json::from_str(
        r#"{ "name": "", "availability_mode": "SYNCHRONOUS_COMMIT", "failover_mode": "MANUAL" }"#,
    )
    .expect("a name and two modes are a complete ReplicaConfig document");
    replica.name = name;
    replica
}

fn expected(token: &Token, expected: impl Into<String>) -> TsqlError {
    TsqlError::Expected {
        line: token.line,
        column: token.column,
        expected: expected.into(),
        found: token.describe(),
    }
}

fn unsupported(token: &Token, what: impl Into<String>) -> TsqlError {
    TsqlError::Unsupported {
        line: token.line,
        column: token.column,
        what: what.into(),
    }
}

fn invalid_value(token: &Token, option: &'static str, expected: &'static str) -> TsqlError {
    TsqlError::InvalidValue {
        line: token.line,
        column: token.column,
        option,
        expected,
        found: token.describe(),
    }
}

fn unknown_option(token: &Token, list: &str, expected: &'static str) -> TsqlError {
    TsqlError::UnknownOption {
        line: token.line,
        column: token.column,
        list: list.to_string(),
        expected,
        found: token.describe(),
    }
}

/// The word of a token in upper case (empty for other tokens), to match keywords on.
fn upper_word(token: &Token) -> String {
    match &token.kind {
        TokenKind::Word(word) => word.to_ascii_uppercase(),
        _ => String::new(),
    }
}

/// The options seen so far in one list, to refuse one given twice.
#[derive(Default)]
struct Seen(Vec<(String, usize, usize)>);

impl Seen {
    fn check(&mut self, token: &Token, option: &str, list: &str) -> Result<()> {
        if let Some((_, first_line, first_column)) = self.0.iter().find(|(o, ..)| o == option) {
            return Err(TsqlError::DuplicateOption {
                line: token.line,
                column: token.column,
                option: option.to_string(),
                list: list.to_string(),
                first_line: *first_line,
                first_column: *first_column,
            });
        }
        self.0.push((option.to_string(), token.line, token.column));
        Ok(())
    }

    fn contains(&self, option: &str) -> bool {
        self.0.iter().any(|(o, ..)| o == option)
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token>,
}

impl Parser<'_> {
    // ----- tokens -----

    fn peek(&mut self) -> Result<&Token> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.lexer.next_token()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn advance(&mut self) -> Result<Token> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lexer.next_token(),
        }
    }

    fn eat_keyword(&mut self, keyword: &str) -> Result<bool> {
        let found = self.peek()?.is_keyword(keyword);
        if found {
            self.advance()?;
        }
        Ok(found)
    }

    fn expect_keyword(&mut self, keyword: &str, what: &str) -> Result<Token> {
        let token = self.advance()?;
        if token.is_keyword(keyword) {
            Ok(token)
        } else {
            Err(expected(&token, what))
        }
    }

    fn eat_symbol(&mut self, symbol: char) -> Result<bool> {
        let found = self.peek()?.kind == TokenKind::Symbol(symbol);
        if found {
            self.advance()?;
        }
        Ok(found)
    }

    fn expect_symbol(&mut self, symbol: char, what: &str) -> Result<Token> {
        let token = self.advance()?;
        if token.kind == TokenKind::Symbol(symbol) {
            Ok(token)
        } else {
            Err(expected(&token, what))
        }
    }

    fn equals(&mut self, option: &str) -> Result<()> {
        self.expect_symbol('=', &format!("'=' after {option}"))?;
        Ok(())
    }

    /// An availability group or database name: a regular identifier that is not a reserved
    /// keyword, or a `[quoted]` / `"quoted"` one.
    fn name(&mut self, what: &'static str) -> Result<String> {
        let token = self.advance()?;
        match token.kind {
            TokenKind::QuotedIdentifier(name) => Ok(name),
            TokenKind::Word(word) if is_reserved(&word) => Err(TsqlError::ReservedWord {
                line: token.line,
                column: token.column,
                expected: what,
                word,
            }),
            TokenKind::Word(ref word) if !word.starts_with('@') => Ok(word.clone()),
            _ => Err(expected(&token, what)),
        }
    }

    /// A server instance (replica) name: a string.
    fn replica_name(&mut self, what: &str) -> Result<String> {
        let token = self.advance()?;
        match token.kind {
            TokenKind::String { value, .. } => Ok(value),
            _ => Err(expected(&token, what)),
        }
    }

    /// The name of the next option of a list, in upper case, and its token.
    fn option_name(&mut self, options: &str) -> Result<(Token, String)> {
        let token = self.advance()?;
        match &token.kind {
            TokenKind::Word(word) => {
                let option = word.to_ascii_uppercase();
                Ok((token, option))
            }
            _ => Err(expected(&token, format!("an option name ({options})"))),
        }
    }

    /// A keyword value from `choices`.
    fn keyword_value<T: Copy>(
        &mut self,
        option: &'static str,
        choices: &[(&str, T)],
        what: &'static str,
    ) -> Result<T> {
        let token = self.advance()?;
        choices
            .iter()
            .find(|(keyword, _)| token.is_keyword(keyword))
            .map(|&(_, value)| value)
            .ok_or_else(|| invalid_value(&token, option, what))
    }

    /// A non-negative integer that fits `T`.
    fn integer_value<T: TryFrom<u64>>(
        &mut self,
        option: &'static str,
        what: &'static str,
    ) -> Result<T> {
        let token = self.advance()?;
        let TokenKind::Integer(digits) = &token.kind else {
            return Err(invalid_value(&token, option, what));
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|value| T::try_from(value).ok())
            .ok_or_else(|| TsqlError::IntegerOutOfRange {
                line: token.line,
                column: token.column,
                option,
                expected: what,
                found: excerpt(digits),
            })
    }

    fn string_value(&mut self, option: &'static str, what: &'static str) -> Result<String> {
        let token = self.advance()?;
        match token.kind {
            TokenKind::String { value, .. } => Ok(value),
            _ => Err(invalid_value(&token, option, what)),
        }
    }

    // ----- statements -----

    /// One statement, starting at `start` (peeked, not consumed).
    fn statement(&mut self, start: &Token) -> Result<Statement> {
        let keyword = upper_word(start);
        let statement = match keyword.as_str() {
            "CREATE" | "ALTER" => {
                self.advance()?;
                let object = self.advance()?;
                match (keyword.as_str(), upper_word(&object).as_str()) {
                    ("CREATE", "AVAILABILITY") => {
                        self.expect_keyword("GROUP", "GROUP after AVAILABILITY")?;
                        self.create_availability_group(start)?
                    }
                    ("ALTER", "AVAILABILITY") => {
                        self.expect_keyword("GROUP", "GROUP after AVAILABILITY")?;
                        self.alter_availability_group()?
                    }
                    ("ALTER", "DATABASE") => self.alter_database()?,
                    (_, "") => {
                        return Err(expected(
                            &object,
                            format!("AVAILABILITY GROUP after {keyword}"),
                        ))
                    }
                    (_, object) => {
                        return Err(unsupported(
                            start,
                            format!("the statement {keyword} {}", excerpt(object)),
                        ))
                    }
                }
            }
            _ if starts_statement(&keyword) => {
                return Err(unsupported(start, format!("the statement {keyword}")))
            }
            _ => return Err(expected(start, STATEMENT)),
        };
        Ok(statement)
    }

    /// After a statement: `;`, GO, the end, or the keyword of the next statement.
    fn finish_statement(&mut self, continuations: &str) -> Result<()> {
        let token = self.peek()?;
        match &token.kind {
            TokenKind::Symbol(';') | TokenKind::Go | TokenKind::End => Ok(()),
            TokenKind::Word(word) if starts_statement(word) => Ok(()),
            _ => Err(expected(
                token,
                format!("{continuations}';', GO or the next statement"),
            )),
        }
    }

    /// `CREATE AVAILABILITY GROUP name [WITH (…)] FOR [DATABASE db, …] REPLICA ON spec, …`,
    /// after `GROUP`; the result is validated.
    fn create_availability_group(&mut self, start: &Token) -> Result<Statement> {
        let mut config = default_ag_config(self.name("an availability group name")?);
        let with = self.eat_keyword("WITH")?;
        if with {
            self.ag_options(&mut config)?;
        }
        self.expect_keyword("FOR", if with { "FOR" } else { "WITH (…) or FOR" })?;
        if self.eat_keyword("DATABASE")? {
            loop {
                config.databases.push(self.name("a database name")?);
                if !self.eat_symbol(',')? {
                    break;
                }
            }
            self.expect_keyword("REPLICA", "',' and another database, or REPLICA ON")?;
        } else {
            self.expect_keyword("REPLICA", "DATABASE or REPLICA ON after FOR")?;
        }
        self.expect_keyword("ON", "ON after REPLICA")?;
        loop {
            config.replicas.push(self.replica_spec()?);
            if !self.eat_symbol(',')? {
                break;
            }
        }
        let next = self.peek()?;
        if next.is_keyword("LISTENER") {
            return Err(unsupported(next, "the LISTENER clause"));
        }
        if next.is_keyword("AVAILABILITY") {
            return Err(unsupported(
                next,
                "AVAILABILITY GROUP ON (a distributed availability group)",
            ));
        }
        self.finish_statement("',' and another replica, ")?;
        config.validate().map_err(|error| TsqlError::Invalid {
            line: start.line,
            column: start.column,
            ag: config.name.clone(),
            error,
        })?;
        Ok(Statement::CreateAvailabilityGroup(Box::new(config)))
    }

    /// `( option = value, … )` of CREATE AVAILABILITY GROUP … WITH.
    fn ag_options(&mut self, config: &mut AgConfig) -> Result<()> {
        const LIST: &str = "the WITH list of the availability group";
        self.expect_symbol('(', "'(' after WITH")?;
        let mut seen = Seen::default();
        loop {
            let (token, option) = self.option_name(AG_OPTIONS)?;
            if AG_UNSUPPORTED.contains(&option.as_str()) {
                return Err(unsupported(
                    &token,
                    format!("the availability-group option {option}"),
                ));
            }
            if option == "CLUSTER_TYPE" {
                self.equals("CLUSTER_TYPE")?;
                config.cluster_type = self.keyword_value(
                    "CLUSTER_TYPE",
                    keywords::CLUSTER_TYPES,
                    "WSFC, EXTERNAL or NONE",
                )?;
            } else {
                match self.ag_setting(&option)? {
                    Some(setting) => setting.apply(config),
                    None => return Err(unknown_option(&token, LIST, AG_OPTIONS)),
                }
            }
            seen.check(&token, &option, LIST)?;
            if !self.eat_symbol(',')? {
                break;
            }
        }
        self.expect_symbol(')', "',' and another option, or ')' to end the WITH list")?;
        Ok(())
    }

    /// `= value` of an availability-group option that ALTER … SET also takes; `None` (nothing
    /// consumed) when `option` is not one.
    fn ag_setting(&mut self, option: &str) -> Result<Option<AgSetting>> {
        let setting = match option {
            "AUTOMATED_BACKUP_PREFERENCE" => {
                self.equals(option)?;
                AgSetting::AutomatedBackupPreference(self.keyword_value(
                    "AUTOMATED_BACKUP_PREFERENCE",
                    keywords::BACKUP_PREFERENCES,
                    "PRIMARY, SECONDARY_ONLY, SECONDARY or NONE",
                )?)
            }
            "FAILURE_CONDITION_LEVEL" => {
                self.equals(option)?;
                AgSetting::FailureConditionLevel(
                    self.integer_value("FAILURE_CONDITION_LEVEL", "1 to 5")?,
                )
            }
            "HEALTH_CHECK_TIMEOUT" => {
                self.equals(option)?;
                AgSetting::HealthCheckTimeoutMs(self.integer_value(
                    "HEALTH_CHECK_TIMEOUT",
                    "a whole number of milliseconds (at least 15000)",
                )?)
            }
            "DB_FAILOVER" => {
                self.equals(option)?;
                AgSetting::DbFailover(self.keyword_value(
                    "DB_FAILOVER",
                    keywords::ON_OFF,
                    "ON or OFF",
                )?)
            }
            "REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT" => {
                self.equals(option)?;
                AgSetting::RequiredSynchronizedSecondariesToCommit(self.integer_value(
                    "REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT",
                    "a whole number of secondaries (below the number of replicas that hold data)",
                )?)
            }
            _ => return Ok(None),
        };
        Ok(Some(setting))
    }

    /// `'name' WITH ( option = value, … )` of a replica, in CREATE and ADD REPLICA ON.
    fn replica_spec(&mut self) -> Result<ReplicaConfig> {
        let name_token = self.peek()?.clone();
        let name = self.replica_name(REPLICA_NAME)?;
        self.expect_keyword("WITH", "WITH (…) after the replica name")?;
        self.expect_symbol('(', "'(' after WITH")?;
        let list = format!("the WITH list of replica '{}'", excerpt(&name));
        let mut replica = default_replica(name);
        let mut seen = Seen::default();
        loop {
            let (token, option) = self.option_name(REPLICA_OPTIONS)?;
            for change in self.replica_option(&token, &option, &mut seen, &list, false)? {
                change.apply(&mut replica);
            }
            if !self.eat_symbol(',')? {
                break;
            }
        }
        self.expect_symbol(
            ')',
            "',' and another option, or ')' to end the replica's WITH list",
        )?;
        for option in ["AVAILABILITY_MODE", "FAILOVER_MODE"] {
            if !seen.contains(option) {
                return Err(TsqlError::MissingOption {
                    line: name_token.line,
                    column: name_token.column,
                    replica: excerpt(&replica.name),
                    option,
                });
            }
        }
        Ok(replica)
    }

    /// `= value` (or `( … )` of a role) of the replica option `option`, as the changes it
    /// makes. With `single`, a role takes one sub-option only (MODIFY REPLICA).
    fn replica_option(
        &mut self,
        token: &Token,
        option: &str,
        seen: &mut Seen,
        list: &str,
        single: bool,
    ) -> Result<Vec<ReplicaChange>> {
        let changes = match option {
            "ENDPOINT_URL" => {
                self.equals(option)?;
                vec![ReplicaChange::EndpointUrl(
                    self.string_value("ENDPOINT_URL", URL)?,
                )]
            }
            "AVAILABILITY_MODE" => {
                self.equals(option)?;
                vec![ReplicaChange::AvailabilityMode(self.keyword_value(
                    "AVAILABILITY_MODE",
                    keywords::AVAILABILITY_MODES,
                    "SYNCHRONOUS_COMMIT, ASYNCHRONOUS_COMMIT or CONFIGURATION_ONLY",
                )?)]
            }
            "FAILOVER_MODE" => {
                self.equals(option)?;
                vec![ReplicaChange::FailoverMode(self.keyword_value(
                    "FAILOVER_MODE",
                    keywords::FAILOVER_MODES,
                    "AUTOMATIC, MANUAL or EXTERNAL",
                )?)]
            }
            "SEEDING_MODE" => {
                self.equals(option)?;
                vec![ReplicaChange::SeedingMode(self.keyword_value(
                    "SEEDING_MODE",
                    keywords::SEEDING_MODES,
                    "AUTOMATIC or MANUAL",
                )?)]
            }
            "BACKUP_PRIORITY" => {
                self.equals(option)?;
                vec![ReplicaChange::BackupPriority(
                    self.integer_value("BACKUP_PRIORITY", "0 to 100")?,
                )]
            }
            "SESSION_TIMEOUT" => {
                self.equals(option)?;
                vec![ReplicaChange::SessionTimeoutS(self.integer_value(
                    "SESSION_TIMEOUT",
                    "a whole number of seconds (at least 5)",
                )?)]
            }
            "SECONDARY_ROLE" | "PRIMARY_ROLE" => self.role_options(option, single)?,
            _ => return Err(unknown_option(token, list, REPLICA_OPTIONS)),
        };
        seen.check(token, option, list)?;
        Ok(changes)
    }

    /// `( option = value, … )` after SECONDARY_ROLE or PRIMARY_ROLE.
    fn role_options(&mut self, role: &str, single: bool) -> Result<Vec<ReplicaChange>> {
        let secondary = role == "SECONDARY_ROLE";
        let (list, options) = if secondary {
            ("SECONDARY_ROLE (…)", SECONDARY_ROLE_OPTIONS)
        } else {
            ("PRIMARY_ROLE (…)", PRIMARY_ROLE_OPTIONS)
        };
        self.expect_symbol('(', &format!("'(' after {role}"))?;
        let mut seen = Seen::default();
        let mut changes = Vec::new();
        loop {
            let (token, option) = self.option_name(options)?;
            let change = match (secondary, option.as_str()) {
                (true, "ALLOW_CONNECTIONS") => {
                    self.equals(&option)?;
                    ReplicaChange::SecondaryAllowConnections(self.keyword_value(
                        "ALLOW_CONNECTIONS",
                        keywords::SECONDARY_CONNECTIONS,
                        "NO, READ_ONLY or ALL",
                    )?)
                }
                (true, "READ_ONLY_ROUTING_URL") => {
                    self.equals(&option)?;
                    ReplicaChange::ReadOnlyRoutingUrl(
                        self.string_value("READ_ONLY_ROUTING_URL", URL)?,
                    )
                }
                (false, "ALLOW_CONNECTIONS") => {
                    self.equals(&option)?;
                    ReplicaChange::PrimaryAllowConnections(self.keyword_value(
                        "ALLOW_CONNECTIONS",
                        keywords::PRIMARY_CONNECTIONS,
                        "READ_WRITE or ALL",
                    )?)
                }
                (false, "READ_ONLY_ROUTING_LIST") => {
                    self.equals(&option)?;
                    ReplicaChange::ReadOnlyRoutingList(self.routing_list()?)
                }
                (false, "READ_WRITE_ROUTING_URL") => {
                    self.equals(&option)?;
                    ReplicaChange::ReadWriteRoutingUrl(
                        self.string_value("READ_WRITE_ROUTING_URL", URL)?,
                    )
                }
                _ => return Err(unknown_option(&token, list, options)),
            };
            seen.check(&token, &option, list)?;
            changes.push(change);
            if single || !self.eat_symbol(',')? {
                break;
            }
        }
        let end = if single {
            ONE_CHANGE.to_string()
        } else {
            format!("',' and another option, or ')' to end {role}")
        };
        self.expect_symbol(')', &end)?;
        Ok(changes)
    }

    /// `NONE` or `( 'B', ('C', 'D'), … )`: replicas and load-balanced groups (one level deep).
    fn routing_list(&mut self) -> Result<Vec<RoutingEntry>> {
        let token = self.advance()?;
        if token.is_keyword("NONE") {
            return Ok(Vec::new());
        }
        if token.kind != TokenKind::Symbol('(') {
            return Err(invalid_value(
                &token,
                "READ_ONLY_ROUTING_LIST",
                "NONE or replica names in parentheses, such as ('B', ('C', 'D'))",
            ));
        }
        let mut entries = Vec::new();
        loop {
            if self.eat_symbol('(')? {
                let mut group = Vec::new();
                loop {
                    group.push(self.replica_name(
                        "a replica name in quotes (a load-balanced group holds names only; groups do not nest)",
                    )?);
                    if !self.eat_symbol(',')? {
                        break;
                    }
                }
                self.expect_symbol(
                    ')',
                    "',' and another replica name, or ')' to end the load-balanced group",
                )?;
                entries.push(RoutingEntry::Group(group));
            } else {
                entries.push(RoutingEntry::Replica(self.replica_name(
                    "a replica name in quotes, or '(' to begin a load-balanced group",
                )?));
            }
            if !self.eat_symbol(',')? {
                break;
            }
        }
        self.expect_symbol(
            ')',
            "',' and another entry, or ')' to end READ_ONLY_ROUTING_LIST",
        )?;
        Ok(entries)
    }

    /// `ALTER AVAILABILITY GROUP name action`, after `GROUP`.
    fn alter_availability_group(&mut self) -> Result<Statement> {
        let ag = self.name("an availability group name")?;
        let token = self.advance()?;
        let keyword = upper_word(&token);
        let action = match keyword.as_str() {
            "FAILOVER" => AgAction::Failover,
            "FORCE_FAILOVER_ALLOW_DATA_LOSS" => AgAction::ForceFailoverAllowDataLoss,
            "SET" => self.alter_set()?,
            "ADD" | "REMOVE" | "MODIFY" => self.alter_member(&token, &keyword)?,
            "JOIN" | "GRANT" | "DENY" | "OFFLINE" | "RESTART" => {
                let what = if keyword == "RESTART" {
                    "RESTART LISTENER"
                } else {
                    &keyword
                };
                return Err(unsupported(
                    &token,
                    format!("ALTER AVAILABILITY GROUP … {what}"),
                ));
            }
            _ => return Err(expected(&token, ALTER_ACTIONS)),
        };
        self.finish_statement("")?;
        Ok(Statement::AlterAvailabilityGroup(AgCommand { ag, action }))
    }

    /// `SET ( option = value )`: one option per statement.
    fn alter_set(&mut self) -> Result<AgAction> {
        self.expect_symbol('(', "'(' after SET")?;
        let (token, option) = self.option_name(SET_OPTIONS)?;
        let action = match option.as_str() {
            "ROLE" => {
                self.equals("ROLE")?;
                self.keyword_value("ROLE", &[("SECONDARY", ())], "SECONDARY")?;
                AgAction::SetRoleSecondary
            }
            "CLUSTER_TYPE" => {
                return Err(TsqlError::NotAlterable {
                    line: token.line,
                    column: token.column,
                    option: "CLUSTER_TYPE",
                })
            }
            "DTC_SUPPORT" | "CLUSTER_CONNECTION_OPTIONS" => {
                return Err(unsupported(
                    &token,
                    format!("the availability-group option {option}"),
                ))
            }
            _ => match self.ag_setting(&option)? {
                Some(setting) => AgAction::Set(setting),
                None => {
                    return Err(unknown_option(
                        &token,
                        "ALTER AVAILABILITY GROUP … SET (…)",
                        SET_OPTIONS,
                    ))
                }
            },
        };
        self.expect_symbol(')', "')': SET changes one option per statement")?;
        Ok(action)
    }

    /// `ADD DATABASE db`, `REMOVE DATABASE db`, `ADD REPLICA ON spec`, `REMOVE REPLICA ON 'X'`,
    /// `MODIFY REPLICA ON 'X' WITH (option = value)`, after the verb `verb_token`.
    fn alter_member(&mut self, verb_token: &Token, verb: &str) -> Result<AgAction> {
        let token = self.advance()?;
        let object = upper_word(&token);
        let action = match (verb, object.as_str()) {
            ("ADD", "DATABASE") => AgAction::AddDatabase(self.name("a database name")?),
            ("REMOVE", "DATABASE") => AgAction::RemoveDatabase(self.name("a database name")?),
            (_, "REPLICA") => {
                self.expect_keyword("ON", "ON after REPLICA")?;
                match verb {
                    "ADD" => AgAction::AddReplica(self.replica_spec()?),
                    "REMOVE" => AgAction::RemoveReplica(self.replica_name(REPLICA_NAME)?),
                    _ => self.modify_replica()?,
                }
            }
            (_, "LISTENER") => {
                return Err(unsupported(
                    verb_token,
                    format!("ALTER AVAILABILITY GROUP … {verb} LISTENER"),
                ))
            }
            ("MODIFY", "AVAILABILITY") => {
                return Err(unsupported(
                    verb_token,
                    format!("ALTER AVAILABILITY GROUP … {verb} AVAILABILITY GROUP ON (a distributed availability group)"),
                ))
            }
            ("MODIFY", _) => return Err(expected(&token, "REPLICA ON after MODIFY")),
            _ => {
                return Err(expected(
                    &token,
                    format!("DATABASE or REPLICA ON after {verb}"),
                ))
            }
        };
        if verb != "MODIFY" && self.peek()?.kind == TokenKind::Symbol(',') {
            let token = self.peek()?;
            return Err(expected(
                token,
                format!("';', GO or the next statement: {verb} {object} takes one per statement"),
            ));
        }
        Ok(action)
    }

    /// `'X' WITH ( option = value )` of MODIFY REPLICA ON.
    fn modify_replica(&mut self) -> Result<AgAction> {
        let replica = self.replica_name(REPLICA_NAME)?;
        self.expect_keyword("WITH", "WITH (…) after the replica name")?;
        self.expect_symbol('(', "'(' after WITH")?;
        let (token, option) = self.option_name(REPLICA_OPTIONS)?;
        let list = format!("MODIFY REPLICA ON '{}'", excerpt(&replica));
        let mut changes =
            self.replica_option(&token, &option, &mut Seen::default(), &list, true)?;
        self.expect_symbol(')', ONE_CHANGE)?;
        match changes.pop() {
            Some(change) if changes.is_empty() => Ok(AgAction::ModifyReplica { replica, change }),
            _ => Err(expected(&token, "one replica option")),
        }
    }

    /// `ALTER DATABASE db SET HADR { SUSPEND | RESUME | OFF | AVAILABILITY GROUP = ag }`, after
    /// `DATABASE`.
    fn alter_database(&mut self) -> Result<Statement> {
        let database = self.name("a database name")?;
        for keyword in ["SET", "HADR"] {
            let token = self.advance()?;
            if token.is_keyword(keyword) {
                continue;
            }
            let prefix = if keyword == "SET" { "" } else { "SET " };
            return Err(match upper_word(&token).as_str() {
                "" => expected(&token, format!("{keyword} after ALTER DATABASE … {prefix}")),
                word => unsupported(
                    &token,
                    format!("ALTER DATABASE … {prefix}{}", excerpt(word)),
                ),
            });
        }
        let token = self.advance()?;
        let action = match upper_word(&token).as_str() {
            "SUSPEND" => HadrAction::Suspend,
            "RESUME" => HadrAction::Resume,
            "OFF" => HadrAction::Leave,
            "AVAILABILITY" => {
                self.expect_keyword("GROUP", "GROUP after AVAILABILITY")?;
                self.equals("AVAILABILITY GROUP")?;
                HadrAction::Join {
                    ag: self.name("an availability group name")?,
                }
            }
            _ => {
                return Err(invalid_value(
                    &token,
                    "SET HADR",
                    "SUSPEND, RESUME, OFF or AVAILABILITY GROUP = name",
                ))
            }
        };
        self.finish_statement("")?;
        Ok(Statement::AlterDatabase(DatabaseCommand {
            database,
            action,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_those_of_config_rs() {
        let config = default_ag_config("ag".into());
        assert_eq!(config.name, "ag");
        assert_eq!(config.failure_condition_level, 3);
        assert_eq!(config.health_check_timeout_ms, 30_000);
        let replica = default_replica("A".into());
        assert_eq!(replica.name, "A");
        assert_eq!(replica.session_timeout_s, 10);
        assert_eq!(replica.backup_priority, 50);
    }
}
