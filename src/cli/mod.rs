//! Command-line interface of the `hydra` binary.
//!
//! The argument grammar mirrors Ory Hydra's cobra commands (names, aliases,
//! flags and defaults). `serve` and `version` are handled by the binary; every
//! other command is a management command that talks HTTP to a running server
//! and is executed by [`run_management`].

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod commands;
pub mod example;
pub mod httpclient;
pub mod janitor;
mod jsonpath;
pub mod migrate;
mod output;

/// Default admin endpoint used by admin management commands.
pub const DEFAULT_ADMIN_ENDPOINT: &str = "http://127.0.0.1:4445";
/// Default public endpoint used by `perform` and `revoke`.
pub const DEFAULT_PUBLIC_ENDPOINT: &str = "http://127.0.0.1:4444";

/// Top-level command line.
#[derive(Parser, Debug)]
#[command(
    name = "hydra",
    about = "Run and manage an OAuth 2.0 and OpenID Connect server",
    long_about = "Run and manage an OAuth 2.0 and OpenID Connect server (Ory Hydra compatible).",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// All `hydra` sub-commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server(s)
    Serve {
        #[command(subcommand)]
        which: ServeWhich,
    },
    /// Display this binary's version, build time and git hash
    Version,
    /// Create resources
    Create(CreateCmd),
    /// Get resources
    Get(GetCmd),
    /// List resources
    List(ListCmd),
    /// Update resources
    Update(UpdateCmd),
    /// Delete resources
    Delete(DeleteCmd),
    /// Import resources
    Import(ImportCmd),
    /// Perform OAuth 2.0 flows
    Perform(PerformCmd),
    /// Introspect resources
    Introspect(IntrospectCmd),
    /// Revoke resources
    Revoke(RevokeCmd),
    /// Example apps for trying the browser flow
    Example(ExampleCmd),
    /// Check the format of the embedded store (Hydra's SQL migrations have no equivalent)
    Migrate(MigrateCmd),
    /// Clean the database of expired tokens, finished flows and expired login sessions
    Janitor(JanitorCmd),
    /// Copy a running server's embedded store into a new directory on its host, without stopping
    /// it (the admin API's POST /admin/backup)
    Backup {
        /// The directory to create (absolute, must not exist), on the server's file system.
        #[arg(value_name = "DIR")]
        dir: String,
        #[command(flatten)]
        conn: ConnFlags,
    },
}

/// `hydra janitor [database_url]`
#[derive(Args, Debug)]
pub struct JanitorCmd {
    #[arg(value_name = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Delete expired access and refresh tokens, codes and spent-token markers.
    #[arg(long)]
    pub tokens: bool,
    /// Delete finished login/consent flows and expired login sessions.
    #[arg(long)]
    pub requests: bool,
    /// Delete expired trust relationships of the JWT bearer grant.
    #[arg(long)]
    pub grants: bool,
    /// Keep rows that expired less than this long ago (e.g. 1h).
    #[arg(long = "keep-if-younger")]
    pub keep_if_younger: Option<String>,
    /// Treat access tokens as expired this long after issue.
    #[arg(long = "access-lifespan")]
    pub access_lifespan: Option<String>,
    /// Treat refresh tokens as expired this long after issue.
    #[arg(long = "refresh-lifespan")]
    pub refresh_lifespan: Option<String>,
    /// How long login and consent challenges stay valid (default ttl.login_consent_request).
    #[arg(long = "consent-request-lifespan")]
    pub consent_request_lifespan: Option<String>,
    /// Stop after deleting about this many rows.
    #[arg(long, default_value_t = 10000)]
    pub limit: usize,
    /// Rows read per step.
    #[arg(long = "batch-size", default_value_t = 100)]
    pub batch_size: usize,
    /// Read the database URL from the DSN environment variable.
    #[arg(short = 'e', long = "read-from-env")]
    pub read_from_env: bool,
    /// Configuration files (DSN and ttl.login_consent_request are read).
    #[arg(short = 'c', long = "config")]
    pub config: Vec<PathBuf>,
}

/// `hydra migrate ...`
#[derive(Args, Debug)]
pub struct MigrateCmd {
    #[command(subcommand)]
    pub what: MigrateWhat,
}

#[derive(Subcommand, Debug)]
pub enum MigrateWhat {
    /// Apply, roll back or show migrations (`up` when no action is given)
    Sql {
        /// up, down or status (default up), then optionally the database URL.
        #[arg(value_name = "ARGS", num_args = 0..=2)]
        args: Vec<String>,
        /// Read the database URL from the DSN environment variable.
        #[arg(short = 'e', long = "read-from-env")]
        read_from_env: bool,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
        /// With down: how many of the newest migrations to roll back.
        #[arg(long, default_value_t = 1)]
        steps: usize,
    },
    /// Show the migration status
    Status {
        #[arg(value_name = "DATABASE_URL")]
        database_url: Option<String>,
        #[arg(short = 'e', long = "read-from-env")]
        read_from_env: bool,
        /// Accepted for compatibility (the check does not wait).
        #[arg(long)]
        block: bool,
    },
}

/// `hydra example ...`
#[derive(Args, Debug)]
pub struct ExampleCmd {
    #[command(subcommand)]
    pub what: ExampleWhat,
}

#[derive(Subcommand, Debug)]
pub enum ExampleWhat {
    /// Run an example login & consent app (uses only the admin API)
    #[command(name = "login-consent")]
    LoginConsent {
        /// The port to listen on (127.0.0.1).
        #[arg(short = 'p', long, default_value_t = 3000)]
        port: u16,
        #[command(flatten)]
        conn: ConnFlags,
    },
}

/// Which server(s) `hydra serve` starts.
#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeMode {
    All,
    Public,
    Admin,
}

/// Flags shared by `hydra serve all|public|admin`.
#[derive(Args, Debug, Clone, PartialEq, Eq, Default)]
pub struct ServeArgs {
    /// Disables critical security checks to improve local development experience. Do not use in production.
    #[arg(long)]
    pub dev: bool,
    /// Path to one or more .json, .yaml, .yml, .toml config files. Values are loaded in the order provided, meaning that the last config file overwrites values from the previous config file.
    #[arg(short = 'c', long = "config", value_delimiter = ',')]
    pub config: Vec<PathBuf>,
    /// Disable anonymized telemetry reports.
    #[arg(long)]
    pub sqa_opt_out: bool,
}

/// `hydra serve <which>`.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum ServeWhich {
    /// Serves both public and administrative HTTP/2 APIs
    All(ServeArgs),
    /// Serves Public HTTP/2 APIs
    Public(ServeArgs),
    /// Serves Administrative HTTP/2 APIs
    Admin(ServeArgs),
}

impl ServeWhich {
    pub fn mode(&self) -> ServeMode {
        match self {
            ServeWhich::All(_) => ServeMode::All,
            ServeWhich::Public(_) => ServeMode::Public,
            ServeWhich::Admin(_) => ServeMode::Admin,
        }
    }

    pub fn args(&self) -> &ServeArgs {
        match self {
            ServeWhich::All(a) | ServeWhich::Public(a) | ServeWhich::Admin(a) => a,
        }
    }
}

/// Output format of management commands (Hydra's `--format`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
    JsonPretty,
    Yaml,
    /// `jsonpath=<template>`: kubectl-style `{.field.sub[0]}` expressions within literal text.
    JsonPath(String),
    /// `jsonpointer=<pointer>` (RFC 6901): the value at that place, as JSON.
    JsonPointer(String),
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        if let Some(t) = s.strip_prefix("jsonpath=") {
            return Ok(Format::JsonPath(t.to_string()));
        }
        if let Some(p) = s.strip_prefix("jsonpointer=") {
            return Ok(Format::JsonPointer(p.to_string()));
        }
        match s {
            "table" | "default" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "json-pretty" => Ok(Format::JsonPretty),
            "yaml" => Ok(Format::Yaml),
            _ => Err(format!(
                "unknown format {s:?}: use table, json, json-pretty, yaml, jsonpath=<template> or jsonpointer=<pointer>"
            )),
        }
    }
}

/// Connection and output flags shared by every management command.
#[derive(Args, Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnFlags {
    /// The API URL this command should target. Alternatively set using the ORY_SDK_URL environmental variable.
    #[arg(short = 'e', long, env = "ORY_SDK_URL")]
    pub endpoint: Option<String>,
    /// Set the output format.
    #[arg(long, value_parser = clap::value_parser!(Format), default_value = "table")]
    pub format: Format,
    /// Be quiet with output printing.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Do not verify the server's TLS certificate (a self-signed certificate in development; never in production).
    #[arg(long)]
    pub skip_tls_verify: bool,
    /// Additional HTTP header `Name: value` (repeatable).
    #[arg(short = 'H', long = "http-header")]
    pub http_header: Vec<String>,
}

/// Fields of an OAuth 2.0 client settable by `create`/`update oauth2-client`.
///
/// Values are optional so that `update` only touches what was given; `create`
/// applies Hydra's defaults for unset values.
#[derive(Args, Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientFields {
    /// Read a JSON encoded OAuth 2.0 client from this file (`-` for stdin); flags are ignored.
    #[arg(long)]
    pub file: Option<String>,
    /// Provide the client's id.
    #[arg(long)]
    pub id: Option<String>,
    /// The client's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Provide the client's secret.
    #[arg(long)]
    pub secret: Option<String>,
    /// List of allowed OAuth2 Redirect URIs.
    #[arg(long = "redirect-uri", value_delimiter = ',')]
    pub redirect_uri: Vec<String>,
    /// A list of allowed grant types (default authorization_code).
    #[arg(long = "grant-type", value_delimiter = ',')]
    pub grant_type: Vec<String>,
    /// A list of allowed response types (default code).
    #[arg(long = "response-type", value_delimiter = ',')]
    pub response_type: Vec<String>,
    /// The scope the client is allowed to request.
    #[arg(long, value_delimiter = ',')]
    pub scope: Vec<String>,
    /// The audience this client is allowed to request.
    #[arg(long, value_delimiter = ',')]
    pub audience: Vec<String>,
    /// Define which authentication method the client may use at the Token Endpoint (default client_secret_basic).
    #[arg(long = "token-endpoint-auth-method")]
    pub token_endpoint_auth_method: Option<String>,
    /// Define the URL where the JSON Web Key Set should be fetched from.
    #[arg(long = "jwks-uri")]
    pub jwks_uri: Option<String>,
    /// The owner of this client, typically a user ID.
    #[arg(long)]
    pub owner: Option<String>,
    /// A URL string that points to a human-readable privacy policy document.
    #[arg(long = "policy-uri")]
    pub policy_uri: Option<String>,
    /// A URL string that points to a human-readable terms of service document.
    #[arg(long = "tos-uri")]
    pub tos_uri: Option<String>,
    /// A URL string of a web page providing information about the client.
    #[arg(long = "client-uri")]
    pub client_uri: Option<String>,
    /// A URL string that references a logo for the client.
    #[arg(long = "logo-uri")]
    pub logo_uri: Option<String>,
    /// The list of URLs allowed to make CORS requests.
    #[arg(long = "allowed-cors-origin", value_delimiter = ',')]
    pub allowed_cors_origin: Vec<String>,
    /// A identifier algorithm: public or pairwise (default public).
    #[arg(long = "subject-type")]
    pub subject_type: Option<String>,
    /// Allowed URLs to be redirected to after a logout.
    #[arg(long = "post-logout-callback", value_delimiter = ',')]
    pub post_logout_callback: Vec<String>,
    /// Client URL that will cause the client to log itself out when rendered in an iframe.
    #[arg(long = "frontchannel-logout-callback")]
    pub frontchannel_logout_callback: Option<String>,
    /// Whether the iss and sid query parameters are sent to the front-channel logout URL.
    #[arg(long = "frontchannel-logout-session-required", num_args = 0..=1, default_missing_value = "true")]
    pub frontchannel_logout_session_required: Option<bool>,
    /// Client URL that will cause the client to log itself out when sent a Logout Token.
    #[arg(long = "backchannel-logout-callback")]
    pub backchannel_logout_callback: Option<String>,
    /// Whether a sid claim is included in the Logout Token.
    #[arg(long = "backchannel-logout-session-required", num_args = 0..=1, default_missing_value = "true")]
    pub backchannel_logout_session_required: Option<bool>,
    /// Metadata is an arbitrary JSON string of generic metadata (default {}).
    #[arg(long)]
    pub metadata: Option<String>,
    /// A list of representing ways to contact people responsible for this client.
    #[arg(long, value_delimiter = ',')]
    pub contact: Vec<String>,
    /// Array of request_uri values that are pre-registered by the RP.
    #[arg(long = "request-uri", value_delimiter = ',')]
    pub request_uri: Vec<String>,
    /// Algorithm that must be used for signing Request Objects (default RS256).
    #[arg(long = "request-object-signing-alg")]
    pub request_object_signing_alg: Option<String>,
    /// URL using the https scheme to be used in calculating Pseudonymous Identifiers.
    #[arg(long = "sector-identifier-uri")]
    pub sector_identifier_uri: Option<String>,
    /// The strategy used to generate access tokens: jwt or opaque.
    #[arg(long = "access-token-strategy")]
    pub access_token_strategy: Option<String>,
    /// Boolean flag specifying whether to skip the consent screen for this client.
    #[arg(long = "skip-consent", num_args = 0..=1, default_missing_value = "true")]
    pub skip_consent: Option<bool>,
    /// Boolean flag specifying whether to skip the logout consent screen for this client.
    #[arg(long = "skip-logout-consent", num_args = 0..=1, default_missing_value = "true")]
    pub skip_logout_consent: Option<bool>,
}

/// `hydra create ...`
#[derive(Args, Debug)]
pub struct CreateCmd {
    #[command(subcommand)]
    pub what: CreateWhat,
}

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum CreateWhat {
    /// Create an OAuth 2.0 Client
    #[command(name = "oauth2-client", visible_alias = "client", alias = "clients", alias = "oauth2-clients")]
    OAuth2Client {
        #[command(flatten)]
        fields: ClientFields,
        #[command(flatten)]
        conn: ConnFlags,
    },
    /// Create a JSON Web Key Set with a JSON Web Key
    #[command(name = "jwk", visible_alias = "jwks")]
    Jwk {
        #[arg(value_name = "SET_ID")]
        set: String,
        #[arg(value_name = "KEY_ID")]
        kid: Option<String>,
        #[command(flatten)]
        key: KeyFlags,
        #[command(flatten)]
        conn: ConnFlags,
    },
}

/// The algorithm, use and output of keys made or imported by the CLI.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct KeyFlags {
    /// The algorithm of the key: generated keys, and PEM or DER keys to import (RS256, RS384, RS512,
    /// PS256, PS384, PS512, ES256, ES384 or EdDSA).
    #[arg(long, default_value = "RS256")]
    pub alg: String,
    /// The intended use of the key.
    #[arg(long = "use", default_value = "sig")]
    pub use_: String,
    /// Only print public keys.
    #[arg(long)]
    pub public: bool,
}

/// `hydra import ...`
#[derive(Args, Debug)]
pub struct ImportCmd {
    #[command(subcommand)]
    pub what: ImportWhat,
}

#[derive(Subcommand, Debug)]
pub enum ImportWhat {
    /// Import one or more OAuth 2.0 Clients from files (a JSON array or object each; `-` or no file: standard input)
    #[command(name = "oauth2-client", visible_alias = "client", alias = "clients", alias = "oauth2-clients")]
    OAuth2Client {
        #[arg(value_name = "FILE")]
        files: Vec<String>,
        #[command(flatten)]
        conn: ConnFlags,
    },
    /// Import JSON Web Keys into a set from files: JSON Web Keys or key sets, or PEM / DER keys
    #[command(name = "jwk", visible_alias = "jwks")]
    Jwk {
        #[arg(value_name = "SET_ID")]
        set: String,
        #[arg(value_name = "FILE", required = true)]
        files: Vec<String>,
        #[command(flatten)]
        key: KeyFlags,
        #[command(flatten)]
        conn: ConnFlags,
    },
}

/// `hydra get ...`
#[derive(Args, Debug)]
pub struct GetCmd {
    #[command(subcommand)]
    pub what: GetWhat,
}

#[derive(Subcommand, Debug)]
pub enum GetWhat {
    /// Get one or more OAuth 2.0 Clients by their ID(s)
    #[command(name = "oauth2-client", visible_alias = "client", alias = "clients", alias = "oauth2-clients")]
    OAuth2Client {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        conn: ConnFlags,
    },
    /// Get one or more JSON Web Key Sets by their set ID(s)
    #[command(name = "jwk", visible_alias = "jwks")]
    Jwk {
        #[arg(required = true, value_name = "SET_ID")]
        sets: Vec<String>,
        /// Only return public keys.
        #[arg(long)]
        public: bool,
        #[command(flatten)]
        conn: ConnFlags,
    },
}

/// `hydra list ...`
#[derive(Args, Debug)]
pub struct ListCmd {
    #[command(subcommand)]
    pub what: ListWhat,
}

#[derive(Subcommand, Debug)]
pub enum ListWhat {
    /// List OAuth 2.0 Clients
    #[command(name = "oauth2-clients", visible_alias = "clients", alias = "client", alias = "oauth2-client")]
    OAuth2Clients {
        /// Sets how many items should be returned per page.
        #[arg(long = "page-size", default_value_t = 100)]
        page_size: u32,
        /// Sets the page token.
        #[arg(long = "page-token")]
        page_token: Option<String>,
        #[command(flatten)]
        conn: ConnFlags,
    },
}

/// `hydra update ...`
#[derive(Args, Debug)]
pub struct UpdateCmd {
    #[command(subcommand)]
    pub what: UpdateWhat,
}

#[derive(Subcommand, Debug)]
pub enum UpdateWhat {
    /// Update an OAuth 2.0 Client
    #[command(name = "oauth2-client", visible_alias = "client", alias = "clients", alias = "oauth2-clients")]
    OAuth2Client {
        #[arg(value_name = "ID")]
        id_arg: String,
        #[command(flatten)]
        fields: ClientFields,
        #[command(flatten)]
        conn: ConnFlags,
    },
}

/// `hydra delete ...`
#[derive(Args, Debug)]
pub struct DeleteCmd {
    #[command(subcommand)]
    pub what: DeleteWhat,
}

#[derive(Subcommand, Debug)]
pub enum DeleteWhat {
    /// Delete one or more OAuth 2.0 Clients by their ID(s)
    #[command(name = "oauth2-client", visible_alias = "client", alias = "clients", alias = "oauth2-clients")]
    OAuth2Client {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        conn: ConnFlags,
    },
    /// Delete one or more JSON Web Key Sets by their set ID(s)
    #[command(name = "jwk", visible_alias = "jwks")]
    Jwk {
        #[arg(required = true, value_name = "SET_ID")]
        sets: Vec<String>,
        #[command(flatten)]
        conn: ConnFlags,
    },
    /// Delete all OAuth2 Access Tokens of an OAuth2 Client
    #[command(name = "access-tokens")]
    AccessTokens {
        #[arg(value_name = "CLIENT_ID")]
        client_id: String,
        #[command(flatten)]
        conn: ConnFlags,
    },
}

/// Client credentials taken from flags or `OAUTH2_CLIENT_ID` / `OAUTH2_CLIENT_SECRET`.
#[derive(Args, Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientAuth {
    /// Use the provided OAuth 2.0 Client ID, defaults to environment variable OAUTH2_CLIENT_ID.
    #[arg(long = "client-id", env = "OAUTH2_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Use the provided OAuth 2.0 Client Secret, defaults to environment variable OAUTH2_CLIENT_SECRET.
    #[arg(long = "client-secret", env = "OAUTH2_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
}

/// `hydra perform ...`
#[derive(Args, Debug)]
pub struct PerformCmd {
    #[command(subcommand)]
    pub what: PerformWhat,
}

#[derive(Subcommand, Debug)]
pub enum PerformWhat {
    /// Perform the OAuth2 Authorization Code Flow (with PKCE) through a browser
    #[command(name = "authorization-code")]
    AuthorizationCode {
        #[command(flatten)]
        creds: ClientAuth,
        /// OAuth2 scope to request.
        #[arg(long, value_delimiter = ',', default_value = "offline,openid")]
        scope: Vec<String>,
        /// The port of the local callback server (127.0.0.1).
        #[arg(short = 'p', long, default_value_t = 4446)]
        port: u16,
        /// Response mode: query (the default) or form_post (a fragment never reaches a server).
        #[arg(long = "response-mode")]
        response_mode: Option<String>,
        /// OpenID Connect prompt values (none, login, consent, select_account).
        #[arg(long, value_delimiter = ',')]
        prompt: Vec<String>,
        #[command(flatten)]
        conn: ConnFlags,
    },
    /// Perform the OAuth2 Device Authorization Grant (RFC 8628): prints where to enter the
    /// user code, then polls the token endpoint until the user has decided
    #[command(name = "device-code")]
    DeviceCode {
        /// Use the provided OAuth 2.0 Client ID, defaults to environment variable OAUTH2_CLIENT_ID.
        #[arg(long = "client-id", env = "OAUTH2_CLIENT_ID")]
        client_id: Option<String>,
        /// The client's secret, sent as client_secret_post (leave out for a public client).
        #[arg(long = "client-secret", env = "OAUTH2_CLIENT_SECRET", hide_env_values = true)]
        client_secret: Option<String>,
        /// OAuth2 scope to request.
        #[arg(long, value_delimiter = ',', default_value = "offline,openid")]
        scope: Vec<String>,
        /// Request a specific OAuth 2.0 Access Token Audience.
        #[arg(long, value_delimiter = ',')]
        audience: Vec<String>,
        #[command(flatten)]
        conn: ConnFlags,
    },
    /// Perform the OAuth2 Client Credentials Flow
    #[command(name = "client-credentials")]
    ClientCredentials {
        #[command(flatten)]
        creds: ClientAuth,
        /// OAuth2 scope to request.
        #[arg(long, value_delimiter = ',')]
        scope: Vec<String>,
        /// Request a specific OAuth 2.0 Access Token Audience.
        #[arg(long, value_delimiter = ',')]
        audience: Vec<String>,
        #[command(flatten)]
        conn: ConnFlags,
    },
}

/// `hydra introspect ...`
#[derive(Args, Debug)]
pub struct IntrospectCmd {
    #[command(subcommand)]
    pub what: IntrospectWhat,
}

#[derive(Subcommand, Debug)]
pub enum IntrospectWhat {
    /// Introspect an access or refresh token
    Token {
        #[arg(value_name = "TOKEN")]
        token: String,
        /// Additionally check if the scope was granted.
        #[arg(long, value_delimiter = ',')]
        scope: Vec<String>,
        #[command(flatten)]
        conn: ConnFlags,
    },
}

/// `hydra revoke ...`
#[derive(Args, Debug)]
pub struct RevokeCmd {
    #[command(subcommand)]
    pub what: RevokeWhat,
}

#[derive(Subcommand, Debug)]
pub enum RevokeWhat {
    /// Revoke an access or refresh token
    Token {
        #[arg(value_name = "TOKEN")]
        token: String,
        #[command(flatten)]
        creds: ClientAuth,
        #[command(flatten)]
        conn: ConnFlags,
    },
}

/// Runs every command except `serve` and `version` (the binary handles those).
/// Returns the process exit code; prints results to stdout and errors (one
/// line) to stderr.
pub fn run_management(cmd: Command) -> i32 {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let code = commands::execute(cmd, &mut out, &mut err);
    let _ = out.flush();
    let _ = err.flush();
    code
}

/// Prints the version block like `hydra version` does.
pub fn print_version(version: &str, git_hash: &str, build_time: &str) {
    print!("{}", version_text(version, git_hash, build_time));
}

/// The text printed by [`print_version`]. A leading `v` is added to the
/// version if missing.
pub fn version_text(version: &str, git_hash: &str, build_time: &str) -> String {
    let v = if version.starts_with('v') { version.to_string() } else { format!("v{version}") };
    format!("Version:    {v}\nGit Hash:   {git_hash}\nBuild Time: {build_time}\n")
}

#[cfg(test)]
mod tests;
